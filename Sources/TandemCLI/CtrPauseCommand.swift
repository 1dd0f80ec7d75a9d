import ArgumentParser

/// `tandem ctr pause ID`: freeze every process (cgroup freezer).
struct CtrPauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Freeze every process of a container (cgroup freezer).")
    @OptionGroup var state: StateRootOption
    @Argument(help: "Container id (or a unique prefix) or name.")
    var container: String

    func run() throws {
        do { try state.control.pause(container, frozen: true) } catch { throw fail(error.description) }
    }
}
