import Devices
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The guest console on a host file descriptor (stdout, or stderr when stdout carries JSON).
/// Buffers until a newline or 4 KiB so a chatty guest costs few system calls, keeps the last
/// bytes for reports, and never blocks the VMM for good: a closed pipe (EPIPE) turns output off,
/// and a kick (EINTR) drops the chunk rather than waiting on a reader that is gone.
public final class FileConsoleSink: ConsoleSink, @unchecked Sendable {
    public static let flushThreshold = 4096
    public static let tailCapacity = 8192

    private let fd: Int32
    private let lock = Lock()
    private var pending: [UInt8] = []
    private var tailBuffer: [UInt8] = []
    private var closed = false
    private let echo: Bool
    /// Bytes the guest wrote in total.
    public private(set) var totalBytes: UInt64 = 0

    /// `echo: false` only records (for quiet runs and tests).
    public init(fd: Int32, echo: Bool = true) {
        self.fd = fd
        self.echo = echo
        // Both buffers allocated here, on the thread that makes the VM: a vCPU thread's first
        // allocation makes glibc map it a malloc arena of its own (~0.05 ms, in the guest's time).
        pending.reserveCapacity(Self.flushThreshold)
        tailBuffer.reserveCapacity(2 * Self.tailCapacity + Self.flushThreshold)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) {
        lock.withLock {
            totalBytes += UInt64(bytes.count)
            tailBuffer.append(contentsOf: bytes)
            if tailBuffer.count > 2 * Self.tailCapacity { tailBuffer.removeFirst(tailBuffer.count - Self.tailCapacity) }
            guard echo, !closed else { return }
            pending.append(contentsOf: bytes)
            if pending.count >= Self.flushThreshold || bytes.contains(UInt8(ascii: "\n")) { flushLocked() }
        }
    }

    public func flush() { lock.withLock { flushLocked() } }

    /// At the end of a run: flushes, and ends a line the guest left unfinished (a VM stopped
    /// mid-line), so what follows on the terminal — a prompt, or the JSON report where stdout and
    /// stderr are merged — starts a line of its own.
    public func finish() {
        lock.withLock {
            if echo, !closed, let last = tailBuffer.last, last != UInt8(ascii: "\n") { pending.append(UInt8(ascii: "\n")) }
            flushLocked()
        }
    }

    /// The last bytes the guest wrote (at most `tailCapacity`), as text.
    public var tail: String {
        lock.withLock { String(decoding: tailBuffer.suffix(Self.tailCapacity), as: UTF8.self) }
    }

    private func flushLocked() {
        defer { pending.removeAll(keepingCapacity: true) }
        guard !closed else { return }
        pending.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written > 0 { offset += written; continue }
                if errno == EPIPE || errno == EBADF { closed = true }
                return
            }
        }
    }
}
