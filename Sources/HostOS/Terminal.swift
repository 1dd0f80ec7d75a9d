#if canImport(Glibc)
import Glibc
#endif

/// A terminal switched to raw mode (every key, Ctrl-C included, reaches the reader at once; no
/// echo) until `restore()`, as QEMU and Firecracker do for a guest's serial console.
public struct RawTerminal {
    private let fd: Int32
    private var saved = termios()
    private var active = false

    /// Enters raw mode on `fd` if it is a terminal; otherwise does nothing.
    public init(fd: Int32) {
        self.fd = fd
        guard isatty(fd) == 1, tcgetattr(fd, &saved) == 0 else { return }
        var raw = saved
        cfmakeraw(&raw)
        raw.c_oflag = saved.c_oflag  // keep output processing: the host's own messages still end lines
        active = tcsetattr(fd, TCSANOW, &raw) == 0
    }

    public var isRaw: Bool { active }

    public mutating func restore() {
        guard active else { return }
        tcsetattr(fd, TCSANOW, &saved)
        active = false
    }
}
