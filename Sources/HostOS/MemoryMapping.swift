#if canImport(Glibc)
import Glibc
#endif

/// An `mmap(2)` region owned by this object and unmapped when it is released.
public final class MemoryMapping: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let size: Int

    /// Anonymous, private, zero-filled memory that is only charged to the process when touched
    /// (MAP_NORESERVE: a 4 GiB guest that touches 2 MiB costs 2 MiB), as guest RAM wants.
    /// `label` names the mapping in the error only (made then: a launch maps guest RAM on its
    /// critical path, and formatting an address there cost ~0.03 ms).
    public static func anonymous(size: Int, label: @autoclosure () -> String) throws(SystemError) -> MemoryMapping {
        guard let pointer = mmap(nil, size, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              pointer != MAP_FAILED else {
            throw SystemError("mmap", "\(label()), \(size) bytes")
        }
        return MemoryMapping(base: pointer, size: size)
    }

    /// A shared mapping of `fd` (how a vCPU's `struct kvm_run` is reached).
    public static func shared(fd: FileDescriptor, size: Int) throws(SystemError) -> MemoryMapping {
        guard let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.rawValue, 0),
              pointer != MAP_FAILED else {
            throw SystemError("mmap", "\(fd.label), \(size) bytes")
        }
        return MemoryMapping(base: pointer, size: size)
    }

    /// A private, copy-on-write mapping of `size` bytes of `fd` from `offset`: pages are read from
    /// the file when first touched, and writes stay in this process (the file is never written
    /// through) — how a restored guest's RAM maps its snapshot's memory file.
    public static func privateFile(fd: FileDescriptor, size: Int, offset: Int) throws(SystemError) -> MemoryMapping {
        guard let pointer = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd.rawValue, off_t(offset)),
              pointer != MAP_FAILED else {
            throw SystemError("mmap", "\(fd.label), \(size) bytes at offset \(offset)")
        }
        return MemoryMapping(base: pointer, size: size)
    }

    private init(base: UnsafeMutableRawPointer, size: Int) {
        self.base = base
        self.size = size
    }

    deinit { munmap(base, size) }
}
