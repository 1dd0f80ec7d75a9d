import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// An eventfd: one thread signals, another wakes from poll().
public final class EventFD: @unchecked Sendable {
    public let fd: FileDescriptor

    public init() throws(SystemError) {
        let raw = clinux_eventfd()
        guard raw >= 0 else { throw SystemError("eventfd") }
        fd = FileDescriptor(adopting: raw, label: "eventfd")
    }

    public func signal() {
        var one: UInt64 = 1
        _ = Glibc.write(fd.rawValue, &one, 8)
    }
}

/// A signalfd for a set of signals the caller has blocked.
public final class SignalFD: @unchecked Sendable {
    public let fd: FileDescriptor

    public init(_ signals: [Int32]) throws(SystemError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        let raw = clinux_signalfd(&mask)
        guard raw >= 0 else { throw SystemError("signalfd") }
        fd = FileDescriptor(adopting: raw, label: "signalfd")
    }

    /// The next pending signal's number, or nil.
    public func next() -> Int32? {
        let signal = clinux_read_signal(fd.rawValue)
        return signal > 0 ? signal : nil
    }
}

/// A one-shot timer that sends `signal` to the thread that made it after a delay (CLOCK_MONOTONIC,
/// SIGEV_THREAD_ID): with the signal blocked there and read from a signalfd, a deadline that
/// interrupts a blocking call (KVM_RUN) on that thread only. Deleted when released.
public final class ThreadTimer {
    private let timer: Int

    public init(signal: Int32, afterNanoseconds delay: UInt64) throws(SystemError) {
        var made = 0
        guard clinux_thread_timer(signal, delay, &made) == 0 else { throw SystemError("timer_create", "signal \(signal)") }
        timer = made
    }

    deinit { _ = clinux_timer_delete(timer) }
}

/// Blocks `signals` in the calling thread (threads it starts inherit the mask) until `restore()`.
public struct BlockedSignals {
    private var previous = sigset_t()

    public init(_ signals: [Int32]) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in signals { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, &previous)
    }

    public mutating func restore() { pthread_sigmask(SIG_SETMASK, &previous, nil) }
}

extension Files {
    /// The file system's magic number at `path` (statfs f_type), or nil.
    public static func filesystemMagic(_ path: String) -> Int? {
        let magic = clinux_filesystem_magic(path)
        return magic < 0 ? nil : magic
    }
}
