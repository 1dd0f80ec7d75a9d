import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `kill [--all] ID [SIGNAL]`: a signal to the container's process (or, with --all, to every
/// process in its cgroup). Signals by name (KILL, SIGKILL) or number; TERM by default.
enum KillCommand {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "IOT": SIGABRT, "BUS": SIGBUS,
        "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM,
        "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN,
        "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH,
        "IO": SIGIO, "POLL": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    static func signal(_ text: String) throws(OCIError) -> Int32 {
        if let number = Int32(text) {
            guard number > 0, number <= 64 else { throw OCIError("kill: \(text) is not a signal number (1-64)") }
            return number
        }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name = String(name.dropFirst(3)) }
        if name.hasPrefix("RTMIN+"), let offset = Int32(name.dropFirst(6)), offset >= 0, offset <= 30 { return 34 + offset }
        guard let number = names[name] else { throw OCIError("kill: unknown signal \"\(text)\"") }
        return number
    }

    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("all", "a")], command: "kill")
        let id = try arguments.id("kill")
        try arguments.expectingNoMore(than: 2, "kill")
        let number = try signal(arguments.positionals.count > 1 ? arguments.positionals[1] : "TERM")
        let record = try options.store.load(id)
        let status = record.currentStatus
        guard [.created, .running, .paused].contains(status) else { throw OCIError("cannot kill container \(id): it is \(status.rawValue)") }
        if arguments.flag("all") {
            for pid in record.processes() { kill(pid, number) }
        } else if kill(record.pid, number) != 0 {
            throw OCIError("kill \(id): " + SystemError("kill", String(record.pid)).description)
        }
        return 0
    }
}
