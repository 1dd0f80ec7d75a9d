import ArgumentParser
import HostOS

/// `tandem ctr rm ID`: removes a stopped container (its writable layer, state and log).
struct CtrRmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove stopped containers (and what a killed tandem left behind); --force stops running ones first.")
    @OptionGroup var state: StateRootOption
    @Flag(name: [.customShort("f"), .long], help: "Stop a running container first.")
    var force = false
    @Argument(help: "Container ids (or unique prefixes) or names.")
    var containers: [String]

    func run() throws {
        for container in containers {
            do {
                let removed = try state.control.remove(container, force: force)
                StandardOutput.write(String(removed.id.prefix(12)) + "\n")
            } catch { throw fail(error.description) }
        }
    }
}
