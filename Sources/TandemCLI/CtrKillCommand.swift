import ArgumentParser
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

    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "KILL": SIGKILL, "USR1": SIGUSR1, "USR2": SIGUSR2,
        "TERM": SIGTERM, "CONT": SIGCONT, "STOP": SIGSTOP, "ALRM": SIGALRM, "WINCH": SIGWINCH,
    ]

    static func parse(_ text: String) -> Int32? {
        if let number = Int32(text), number > 0, number < 65 { return number }
        let name = text.uppercased().hasPrefix("SIG") ? String(text.uppercased().dropFirst(3)) : text.uppercased()
        return names[name]
    }

    func run() throws {
        guard let number = Self.parse(signal) else { throw fail("--signal \(signal): not a signal name or number") }
        do { try state.control.kill(container, signal: number) } catch { throw fail(error.description) }
    }
}
