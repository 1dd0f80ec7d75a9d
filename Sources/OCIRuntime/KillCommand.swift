import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `kill [--all] ID [SIGNAL]`: a signal to the container's process (or, with --all, to every
/// process in its cgroup). Signals by name (KILL, SIGKILL) or number; TERM by default.
enum KillCommand {
    static func signal(_ text: String) throws(OCIError) -> Int32 {
        guard let number = Signals.number(text) else {
            throw OCIError(Int32(text) != nil ? "kill: \(text) is not a signal number (1-64)" : "kill: unknown signal \"\(text)\"")
        }
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
