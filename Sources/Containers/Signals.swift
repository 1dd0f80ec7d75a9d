#if canImport(Glibc)
import Glibc
#endif

/// Signals by name, as people and image configs write them ("TERM", "SIGTERM", "15", "RTMIN+3"):
/// the one table `tandem ctr kill`, `tandem-runtime kill` and an image's StopSignal share.
public enum Signals {
    static let names: [String: Int32] = [
        "HUP": SIGHUP, "INT": SIGINT, "QUIT": SIGQUIT, "ILL": SIGILL, "TRAP": SIGTRAP, "ABRT": SIGABRT, "IOT": SIGABRT, "BUS": SIGBUS,
        "FPE": SIGFPE, "KILL": SIGKILL, "USR1": SIGUSR1, "SEGV": SIGSEGV, "USR2": SIGUSR2, "PIPE": SIGPIPE, "ALRM": SIGALRM,
        "TERM": SIGTERM, "STKFLT": SIGSTKFLT, "CHLD": SIGCHLD, "CONT": SIGCONT, "STOP": SIGSTOP, "TSTP": SIGTSTP, "TTIN": SIGTTIN,
        "TTOU": SIGTTOU, "URG": SIGURG, "XCPU": SIGXCPU, "XFSZ": SIGXFSZ, "VTALRM": SIGVTALRM, "PROF": SIGPROF, "WINCH": SIGWINCH,
        "IO": SIGIO, "POLL": SIGIO, "PWR": SIGPWR, "SYS": SIGSYS,
    ]

    /// The signal's number, or nil when `text` names none (numbers 1-64).
    public static func number(_ text: String) -> Int32? {
        if let number = Int32(text) { return number > 0 && number <= 64 ? number : nil }
        var name = text.uppercased()
        if name.hasPrefix("SIG") { name = String(name.dropFirst(3)) }
        if name.hasPrefix("RTMIN+"), let offset = Int32(name.dropFirst(6)), offset >= 0, offset <= 30 { return 34 + offset }
        if name == "RTMIN" { return 34 }
        if name == "RTMAX" { return 64 }
        return names[name]
    }
}
