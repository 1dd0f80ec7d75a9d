import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// An open file descriptor that this object owns and closes exactly once, when it is released.
/// Reference semantics make ownership obvious across threads (a vCPU thread and the main thread
/// may both hold the VM's descriptor), and `deinit` makes cleanup of partial state automatic.
public final class FileDescriptor: @unchecked Sendable {
    /// The raw descriptor; valid for as long as this object lives.
    public let rawValue: Int32
    /// What it refers to, for error messages ("/dev/kvm", "vm", "vcpu 0").
    public let label: String

    public init(adopting rawValue: Int32, label: String) {
        self.rawValue = rawValue
        self.label = label
    }

    /// `open(2)` with O_CLOEXEC added.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> FileDescriptor {
        let fd = try retryingOnInterrupt("open", path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(adopting: fd, label: path)
    }

    /// A pipe whose ends are close-on-exec (they never leak into spawned programs); `label` names
    /// it in errors ("sync pipe").
    public static func pipe(_ label: String) throws(SystemError) -> (read: FileDescriptor, write: FileDescriptor) {
        var ends: [Int32] = [0, 0]
        guard clinux_pipe_cloexec(&ends) == 0 else { throw SystemError("pipe2", label) }
        return (FileDescriptor(adopting: ends[0], label: label), FileDescriptor(adopting: ends[1], label: label))
    }

    /// A connected pair of SOCK_SEQPACKET unix sockets (close-on-exec): messages keep their
    /// boundaries and may carry descriptors. `label` names it in errors ("sync socket").
    public static func seqpacketPair(_ label: String) throws(SystemError) -> (FileDescriptor, FileDescriptor) {
        var ends: [Int32] = [0, 0]
        guard clinux_seqpacket_pair(&ends) == 0 else { throw SystemError("socketpair", label) }
        return (FileDescriptor(adopting: ends[0], label: label), FileDescriptor(adopting: ends[1], label: label))
    }

    deinit { _ = Glibc.close(rawValue) }

    /// Reads until end of file (at most `limit` bytes; a larger file is an error naming it).
    public func readAll(limit: Int = 1 << 30) throws(SystemError) -> [UInt8] {
        var result: [UInt8] = []
        // Size the buffer once from fstat: a kernel image is megabytes, and growing an array 64 KiB
        // at a time copies it over and over on the VM launch path.
        var info = stat()
        if fstat(rawValue, &info) == 0, info.st_size > 0, Int(info.st_size) <= limit {
            result.reserveCapacity(Int(info.st_size))
        }
        // A small file (or a /proc one, size 0) gets a small buffer: 1 MiB would be an mmap and munmap.
        let chunkSize = info.st_size > 0 ? min(1 << 20, Int(info.st_size) + 1) : 65536
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { chunk.deallocate() }
        while true {
            let count = try retryingOnInterrupt("read", label) { Glibc.read(rawValue, chunk, chunkSize) }
            if count == 0 { return result }
            result.append(contentsOf: UnsafeRawBufferPointer(start: chunk, count: count))
            if result.count > limit { throw SystemError("read", label, errno: EFBIG) }
        }
    }

    /// Writes every byte, retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let written = try retryingOnInterrupt("write", label) {
                Glibc.write(rawValue, bytes.baseAddress! + offset, bytes.count - offset)
            }
            offset += written
        }
    }

    /// Writes every byte of `bytes`.
    public func writeAll(_ bytes: [UInt8]) throws(SystemError) {
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
        defer { copy.deallocate() }
        copy.copyBytes(from: bytes)
        try writeAll(UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]))
    }

    /// Writes every byte at file offset `offset` (pwrite), retrying short writes and EINTR.
    public func writeAll(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SystemError) {
        var done = 0
        while done < bytes.count {
            let written = try retryingOnInterrupt("pwrite", label) {
                Glibc.pwrite(rawValue, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            }
            done += written
        }
    }
}
