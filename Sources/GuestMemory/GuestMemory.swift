import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A guest-physical address. A distinct type so host pointers and guest addresses never mix.
public struct GuestAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64
    public init(_ value: UInt64) { self.value = value }
    public static func < (lhs: GuestAddress, rhs: GuestAddress) -> Bool { lhs.value < rhs.value }
    /// Saturating: addresses come from the guest (descriptors, rings), and one near 2^64 plus an
    /// offset must not trap the VMM; the saturated address lies outside every region, so the
    /// access it is for fails as out of bounds.
    public static func + (lhs: GuestAddress, rhs: UInt64) -> GuestAddress {
        let (sum, overflow) = lhs.value.addingReportingOverflow(rhs)
        return GuestAddress(overflow ? .max : sum)
    }
    public var description: String { "0x" + String(value, radix: 16) }
}

/// An access outside the guest's RAM, named by address and length.
public enum GuestMemoryError: Error, CustomStringConvertible, Equatable {
    case outOfBounds(address: GuestAddress, length: Int)
    case system(SystemError)

    public var description: String {
        switch self {
        case .outOfBounds(let address, let length):
            return "guest memory access of \(length) bytes at \(address) is outside guest RAM"
        case .system(let error):
            return error.description
        }
    }
}

/// One contiguous range of guest RAM, backed by an anonymous host mapping it owns.
public final class GuestMemoryRegion: @unchecked Sendable {
    public let start: GuestAddress
    public let size: Int
    let mapping: MemoryMapping

    public var host: UnsafeMutableRawPointer { mapping.base }
    public var end: UInt64 { start.value + UInt64(size) }

    init(start: GuestAddress, size: Int, hugePages: Bool) throws(GuestMemoryError) {
        self.start = start
        self.size = size
        do { mapping = try MemoryMapping.anonymous(size: size, label: "guest RAM at \(start)") } catch { throw .system(error) }
        // Advice only: where THP is off ("never") the kernel ignores it and 4 KiB pages are used.
        if hugePages { _ = madvise(mapping.base, size, MADV_HUGEPAGE) }
    }

    /// A region whose bytes start as `size` bytes of `file` from `offset`, copy-on-write (a
    /// snapshot's memory file: pages load when the guest first touches them).
    init(start: GuestAddress, size: Int, file: FileDescriptor, offset: Int) throws(GuestMemoryError) {
        self.start = start
        self.size = size
        do { mapping = try MemoryMapping.privateFile(fd: file, size: size, offset: offset) } catch { throw .system(error) }
    }

    func contains(_ address: UInt64, length: Int) -> Bool {
        address >= start.value && length <= size && address - start.value <= UInt64(size - length)
    }
}

/// The guest's RAM: bounds-checked reads and writes by guest-physical address. It knows nothing of
/// KVM; the VMM hands each region's host pointer to KVM itself.
public final class GuestMemory: @unchecked Sendable {
    public let regions: [GuestMemoryRegion]

    /// Allocates RAM for each (start, size) range; ranges must not overlap. `hugePages` asks for
    /// transparent huge pages (fewer faults when much is touched, but each touch commits 2 MiB).
    public init(ranges: [(start: GuestAddress, size: Int)], hugePages: Bool = false) throws(GuestMemoryError) {
        var regions: [GuestMemoryRegion] = []
        for range in ranges.sorted(by: { $0.start < $1.start }) {
            if let last = regions.last, range.start.value < last.end {
                throw .outOfBounds(address: range.start, length: range.size)
            }
            regions.append(try GuestMemoryRegion(start: range.start, size: range.size, hugePages: hugePages))
        }
        self.regions = regions
    }

    /// RAM whose contents come from `file`: each range's bytes follow the previous range's there
    /// (the layout `Machine.writeSnapshot` writes). Ranges must be sorted and apart, and the file
    /// must hold them all (checked by the caller, who can name the file).
    public init(ranges: [(start: GuestAddress, size: Int)], file: FileDescriptor) throws(GuestMemoryError) {
        var regions: [GuestMemoryRegion] = []
        var offset = 0
        for range in ranges {
            if let last = regions.last, range.start.value < last.end { throw .outOfBounds(address: range.start, length: range.size) }
            regions.append(try GuestMemoryRegion(start: range.start, size: range.size, file: file, offset: offset))
            offset += range.size
        }
        self.regions = regions
    }

    /// Total bytes of RAM.
    public var size: Int { regions.reduce(0) { $0 + $1.size } }

    /// Host pointer to `length` bytes at `address`, if all of them lie in one region.
    public func hostPointer(_ address: GuestAddress, length: Int) throws(GuestMemoryError) -> UnsafeMutableRawPointer {
        guard length >= 0, let region = regions.first(where: { $0.contains(address.value, length: length) }) else {
            throw .outOfBounds(address: address, length: length)
        }
        return region.host + Int(address.value - region.start.value)
    }

    public func write(_ bytes: [UInt8], at address: GuestAddress) throws(GuestMemoryError) {
        try write(bytes[...], at: address)
    }

    /// Writes a slice without copying it first (a kernel's payload is most of its file).
    public func write(_ bytes: ArraySlice<UInt8>, at address: GuestAddress) throws(GuestMemoryError) {
        let destination = try hostPointer(address, length: bytes.count)
        bytes.withUnsafeBytes { if let base = $0.baseAddress { destination.copyMemory(from: base, byteCount: $0.count) } }
    }

    public func write<T: FixedWidthInteger>(_ value: T, at address: GuestAddress) throws(GuestMemoryError) {
        let destination = try hostPointer(address, length: MemoryLayout<T>.size)
        destination.storeBytes(of: value.littleEndian, as: T.self)
    }

    public func read(_ length: Int, at address: GuestAddress) throws(GuestMemoryError) -> [UInt8] {
        let source = try hostPointer(address, length: length)
        return Array(UnsafeRawBufferPointer(start: source, count: length))
    }

    public func read<T: FixedWidthInteger>(_ type: T.Type, at address: GuestAddress) throws(GuestMemoryError) -> T {
        let source = try hostPointer(address, length: MemoryLayout<T>.size)
        return T(littleEndian: source.loadUnaligned(as: T.self))
    }

    /// The host's page size: a deferred fill's address is aligned to it.
    public static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Marks the `length` bytes of guest RAM at `address` (page-aligned) to be filled later, by
    /// `DeferredFill.fill`, while the guest may already run: until a page is filled, whoever
    /// touches it (a vCPU inside KVM_RUN too) waits for it (userfaultfd, missing-page mode). Nil
    /// where this process may not use userfaultfd for that (unprivileged, or an old kernel): the
    /// caller copies first instead.
    public func deferFill(_ address: GuestAddress, length: Int) -> DeferredFill? {
        guard address.value % UInt64(Self.pageSize) == 0, length > 0 else { return nil }
        let rounded = (length + Self.pageSize - 1) / Self.pageSize * Self.pageSize
        guard let start = try? hostPointer(address, length: rounded) else { return nil }
        let uffd = clinux_uffd_open()
        guard uffd >= 0 else { return nil }
        let fd = FileDescriptor(adopting: uffd, label: "userfaultfd for guest RAM at \(address)")
        guard clinux_uffd_register(uffd, start, rounded) == 0 else { return nil }
        return DeferredFill(fd: fd, start: start, address: address, length: rounded)
    }
}

/// Guest RAM that `GuestMemory.deferFill` left to be filled: `fill` it page by page (any order);
/// pages still unfilled when this is released read as zeros from then on and nobody waits for
/// them. Holds the userfaultfd, so it must not outlive the guest RAM it fills.
public final class DeferredFill: @unchecked Sendable {
    let fd: FileDescriptor
    let start: UnsafeMutableRawPointer
    /// Where in guest RAM, and how many bytes (a page multiple).
    public let address: GuestAddress
    public let length: Int

    init(fd: FileDescriptor, start: UnsafeMutableRawPointer, address: GuestAddress, length: Int) {
        self.fd = fd
        self.start = start
        self.address = address
        self.length = length
    }

    /// Fills `count` bytes (a page multiple, or up to the end) at `offset` from `source`, and wakes
    /// whoever waits for them. A page already filled is an error (EEXIST): each is filled once.
    public func fill(at offset: Int, from source: UnsafeRawPointer, count: Int) throws(GuestMemoryError) {
        guard offset >= 0, count > 0, offset % GuestMemory.pageSize == 0, count % GuestMemory.pageSize == 0,
              offset <= length - count else {
            throw .outOfBounds(address: address + UInt64(max(offset, 0)), length: count)
        }
        let result = clinux_uffd_copy(fd.rawValue, start + offset, source, count)
        guard result == 0 else {
            throw .system(SystemError("UFFDIO_COPY", "guest RAM at \(address + UInt64(offset)), \(count) bytes", errno: -result))
        }
    }
}
