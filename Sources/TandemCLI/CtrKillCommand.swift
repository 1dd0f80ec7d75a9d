import ArgumentParser
import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `tandem ctr kill ID [--signal S]`.
struct CtrKillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Send a signal (default KILL) to a container's PID 1.")
    @OptionGroup var state: StateRootOption
    @Option(name: [.customShort("s"), .long], help: ArgumentHelp("Signal name (TERM, SIGTERM) or number.", valueName: "signal"))
    var signal = "KILL"
    @Argument(help: "Container id (or a unique prefix) or name.")
    var container: String

    static func parse(_ text: String) -> Int32? { Signals.number(text) }

    func run() throws {
        guard let number = Self.parse(signal) else { throw fail("--signal \(signal): not a signal name or number") }
        do { try state.control.kill(container, signal: number) } catch { throw fail(error.description) }
    }
}
