#if canImport(Glibc)
import Glibc
#endif

/// /proc facts about processes, without Foundation.
public enum ProcessInfoLite {
    /// Whether this process is in the initial user namespace (its uid_map maps every id to
    /// itself): not so inside `unshare --user`, where being uid 0 is not being host root.
    public static var inInitialUserNamespace: Bool {
        guard let map = Files.readText("/proc/self/uid_map") else { return true }
        return map.split(whereSeparator: { $0 == " " || $0 == "\n" }) == ["0", "0", "4294967295"]
    }

    /// Field 22 of /proc/PID/stat (start time in clock ticks since boot), or nil if gone: with
    /// the pid it names one process, even after the pid is reused.
    public static func startTime(_ pid: pid_t) -> UInt64? {
        guard let stat = Files.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces) start at field 3.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }

    /// A "Key:" line's first number in /proc/PID/status (e.g. VmHWM in kB, Uid).
    public static func status(_ pid: pid_t, _ key: String) -> UInt64? {
        guard let status = Files.readText("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(key + ":") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap { UInt64($0) }
        }
        return nil
    }

    /// CPU time `pid` has used (fields 14 and 15 of /proc/PID/stat, utime + stime, in clock
    /// ticks), nanoseconds; nil if gone.
    public static func cpuNanoseconds(_ pid: pid_t) -> UInt64? {
        guard let stat = Files.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = UInt64(fields[11]), let system = UInt64(fields[12]) else { return nil }
        let ticks = UInt64(max(1, sysconf(Int32(_SC_CLK_TCK))))
        return (user + system) * (1_000_000_000 / ticks)
    }

    /// Peak resident set (VmHWM) of `pid`, bytes.
    public static func peakRSS(_ pid: pid_t) -> UInt64? { status(pid, "VmHWM").map { $0 * 1024 } }

    /// The last NSpid of /proc/PID/status: the pid as its own PID namespace sees it.
    public static func namespacePID(_ pid: pid_t) -> pid_t? {
        guard let status = Files.readText("/proc/\(pid)/status") else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("NSpid:") {
            return line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last.flatMap { pid_t($0) }
        }
        return nil
    }

    /// Field 4 of /proc/PID/stat: the parent's pid, or nil if gone.
    public static func parent(_ pid: pid_t) -> pid_t? {
        guard let stat = Files.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? pid_t(fields[1]) : nil
    }

    /// Whether `pid` is a running process: it exists and is not a zombie waiting to be reaped
    /// (this sandbox's PID 1 reaps orphans only every second or so).
    public static func isAlive(_ pid: pid_t) -> Bool {
        guard let stat = Files.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first.map { $0 != "Z" && $0 != "X" } ?? false
    }

    /// Every pid in /proc now.
    public static func all() -> [pid_t] { Files.list("/proc").compactMap { pid_t($0) } }

    public static func uid(_ pid: pid_t) -> UInt32? { status(pid, "Uid").map { UInt32(truncatingIfNeeded: $0) } }

    public static func commandLine(_ pid: pid_t) -> String {
        guard let bytes = try? Files.read("/proc/\(pid)/cmdline", limit: 4096), !bytes.isEmpty else {
            return Files.readText("/proc/\(pid)/comm").map { "[" + String($0.filter { $0 != "\n" }) + "]" } ?? "?"
        }
        return String(decoding: bytes.dropLast().map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }
}

/// The host CPU's clock, from /proc/cpuinfo. Guests under TCG get it as `tsc_early_khz`: their
/// early TSC calibration can hang otherwise (PLATFORM.md).
public enum HostClock {
    public static func kilohertz() -> Int? {
        guard let text = Files.readText("/proc/cpuinfo") else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("cpu MHz") {
            if let value = line.split(separator: ":").last.flatMap({ Double($0.filter { !$0.isWhitespace }) }) { return Int(value * 1000) }
        }
        return nil
    }
}

/// XML and HTML text escaping (& < > " ').
public enum Markup {
    public static func escape(_ text: String) -> String {
        var out = ""
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(character)
            }
        }
        return out
    }
}

extension Files {
    /// mkdir -p, each missing directory made with `mode`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var current = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            current += "/\(component)"
            if mkdir(current, mode) != 0 && errno != EEXIST { throw SystemError("mkdir", current) }
        }
    }

    /// rm -rf: removes `path` and everything under it, never following a symlink out of the tree.
    public static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            if let handle = opendir(path) {
                while let entry = readdir(handle) {
                    let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                    if name != ".", name != ".." { removeTree(path + "/" + name) }
                }
                closedir(handle)
            }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

/// The Linux guest kernel command line every backend shares (Tandem's VMM, libvirt, QEMU run
/// directly, the nested lab): console on COM1 and one UART, no PS/2 mouse or multiplexer, a
/// "dumb" i8042 (no probing of what is not emulated), and a panic reboots at once — which ends
/// the VM. Each backend adds what is its own (Tandem's control ports, the workload).
public enum GuestCommandLine {
    /// `reboot`: `k` (through the i8042, which Tandem's VMM turns into the VM's end) or `t`
    /// (triple fault: QEMU with -no-reboot / libvirt on_reboot=destroy). `pciOff`: machines
    /// without a PCI bus (microVMs) spare the kernel probing for one.
    public static func base(reboot: String, pciOff: Bool) -> String {
        "console=ttyS0 reboot=\(reboot) panic=-1 " + (pciOff ? "pci=off " : "") + "8250.nr_uarts=1 i8042.noaux i8042.nomux i8042.dumbkbd"
    }

    /// `tsc_early_khz=…` for a guest QEMU emulates (TCG): its early TSC calibration can hang
    /// otherwise (PLATFORM.md). Nil when the host's clock is unknown.
    public static func emulatedClock() -> String? { HostClock.kilohertz().map { "tsc_early_khz=\($0)" } }
}

/// Cuts a byte stream into text lines. A serial console ends lines in \r\n (twice \r when a
/// guest's console passes another tty), and Swift treats \r\n as one Character, so lines are cut
/// as bytes and every trailing \r dropped.
public struct LineBuffer: Sendable {
    private var pending: [UInt8] = []
    public init() {}

    /// Appends `bytes`; returns the lines they completed.
    public mutating func append<Bytes: Sequence>(_ bytes: Bytes) -> [String] where Bytes.Element == UInt8 {
        pending += bytes
        var complete: [String] = []
        while let newline = pending.firstIndex(of: 0x0a) {
            var line = pending[..<newline]
            while line.last == 0x0d { line = line.dropLast() }
            complete.append(String(decoding: line, as: UTF8.self))
            pending.removeSubrange(...newline)
        }
        return complete
    }

    /// What came after the last newline.
    public var remainder: String { String(decoding: pending, as: UTF8.self) }

    /// The unfinished last line as a line (at the end of the stream), and an empty buffer.
    public mutating func flush() -> [String] {
        defer { pending.removeAll() }
        return pending.isEmpty ? [] : append([0x0a])
    }
}

extension String {
    /// The rest of the string from the first occurrence of `needle` (without Foundation), or nil.
    public func fromFirst(_ needle: String) -> Substring? {
        let text = Array(utf8), pattern = Array(needle.utf8)
        guard !pattern.isEmpty, text.count >= pattern.count else { return nil }
        for start in 0...(text.count - pattern.count) where text[start] == pattern[0] && Array(text[start..<(start + pattern.count)]) == pattern {
            return self[utf8.index(utf8.startIndex, offsetBy: start)...]
        }
        return nil
    }
}

/// This process's environment as KEY=value strings (for a spawned program's envp).
public enum Environment {
    public static func current() -> [String] {
        var result: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            result.append(String(cString: entry))
            pointer += 1
        }
        return result
    }
}

/// A wait status (waitpid's) as a shell reports it: the exit code, or 128 + N for signal N.
public enum WaitStatus {
    public static func exitCode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal != 0 ? 128 + signal : (status >> 8) & 0xff
    }
}

/// UTC times as RFC 3339 text ("2026-11-23T05:27:55Z", or with nanoseconds as runc's `created`).
public enum UTCTime {
    public static func format(nanoseconds: UInt64, fraction: Bool) -> String {
        var seconds = time_t(nanoseconds / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        var text = "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))"
        if fraction {
            let digits = String(nanoseconds % 1_000_000_000)
            text += "." + String(repeating: "0", count: 9 - digits.count) + digits
        }
        return text + "Z"
    }
}
