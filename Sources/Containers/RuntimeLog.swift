import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `--log FILE --log-format text|json --debug`: where the runtime's messages go besides stderr.
/// The JSON form is one object per line with `level`, `msg` and `time`, as runc writes it (podman
/// and containerd read errors from there).
package final class RuntimeLog: @unchecked Sendable {
    package enum Format: String { case text, json }
    package let path: String?
    package let format: Format
    package let debugEnabled: Bool
    /// The monitor gives up its stderr (the container's) once the container exists.
    package var toStandardError = true

    /// The program named at the start of each message on stderr.
    let label: String

    package init(path: String?, format: Format, debug: Bool, label: String = "tandem-runtime") {
        self.label = label
        self.path = path
        self.format = format
        debugEnabled = debug
    }

    package func error(_ message: String) { emit("error", message, stderr: true) }
    package func warning(_ message: String) { emit("warning", message, stderr: debugEnabled) }
    /// A warning runc would print too (a setting ignored): on stderr always, and in the log.
    package func notice(_ message: String) { emit("warning", message, stderr: true) }
    package func debug(_ message: String) { if debugEnabled { emit("debug", message, stderr: true) } }

    private func emit(_ level: String, _ message: String, stderr: Bool) {
        if stderr && toStandardError { StandardError.line(level == "error" ? "\(label): \(message)" : "\(label): \(level): \(message)") }
        guard let path else { return }
        let time = UTCTime.format(nanoseconds: Clock.realtimeNanoseconds(), fraction: true)
        let line: String = switch format {
        case .json: JSON.object([("level", .string(level)), ("msg", .string(message)), ("time", .string(time))]).serialized() + "\n"
        case .text: "time=\"\(time)\" level=\(level) msg=\"\(message)\"\n"
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        _ = line.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }
}
