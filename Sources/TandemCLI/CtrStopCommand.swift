import ArgumentParser
import HostOS

/// `tandem ctr stop ID`: SIGTERM, then SIGKILL after --time seconds.
struct CtrStopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a container: SIGTERM to its PID 1, SIGKILL to all of it after --time seconds.")
    @OptionGroup var state: StateRootOption
    @Option(name: [.customShort("t"), .long], help: "Seconds to wait before SIGKILL.")
    var time: Double = 10
    @Argument(help: "Container ids (or unique prefixes) or names.")
    var containers: [String]

    func run() throws {
        for container in containers {
            do {
                let stopped = try state.control.stop(container, grace: time)
                StandardOutput.write(String(stopped.id.prefix(12)) + "\n")
            } catch { throw fail(error.description) }
        }
    }
}
