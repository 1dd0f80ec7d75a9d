import ArgumentParser

/// `tandem ctr resume ID`: thaw a paused container.
struct CtrResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Thaw a paused container.")
    @OptionGroup var state: StateRootOption
    @Argument(help: "Container id (or a unique prefix) or name.")
    var container: String

    func run() throws {
        do { try state.control.pause(container, frozen: false) } catch { throw fail(error.description) }
    }
}
