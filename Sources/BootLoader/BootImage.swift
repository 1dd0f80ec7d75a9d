import GuestMemory
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The bytes of a boot image (kernel, initrd), wherever they live. The loader reads only the small
/// parts it must look at (the setup header) and has the rest copied straight into guest RAM, so a
/// 14 MB kernel costs one copy from the page cache instead of a read into a buffer and a copy out.
public protocol BootImage: Sendable {
    /// The path (or a name) the user knows the image by, for messages.
    var name: String { get }
    var count: Int { get }
    /// Bytes `range` of the image (small: headers).
    func read(_ range: Range<Int>) throws(BootLoaderError) -> [UInt8]
    /// Puts bytes `from...` of the image into guest memory at `address`: copied now, or — where
    /// `deferrable` and the image and guest memory allow it — left to `PendingCopy.complete`,
    /// which may run while the guest already does (an initrd: the guest reads it long after its
    /// kernel has started).
    func place(from offset: Int, into memory: GuestMemory, at address: GuestAddress, deferrable: Bool) throws(BootLoaderError) -> PendingCopy?
}

/// Image bytes whose guest RAM is registered (`GuestMemory.deferFill`) but not yet written: a
/// vCPU touching it waits until `complete` has filled its page. Released without `complete`, the
/// range reads as zeros.
public final class PendingCopy: @unchecked Sendable {
    public let name: String
    public let address: GuestAddress
    public let count: Int
    let image: FileImage
    let offset: Int
    var fill: DeferredFill?

    init(image: FileImage, offset: Int, count: Int, fill: DeferredFill) {
        self.name = image.name
        self.address = fill.address
        self.count = count
        self.image = image
        self.offset = offset
        self.fill = fill
    }

    /// How much is filled at a time: each fill wakes the vCPUs waiting on its pages.
    static let chunk = 1 << 20

    /// Fills the range from the image's file (mapped read-only: one copy, from the page cache),
    /// then lets the range go. A file that shrank or failed meanwhile is an error naming it.
    public func complete() throws(BootLoaderError) {
        guard let fill else { return }
        defer { self.fill = nil }
        let length = fill.length
        guard let source = mmap(nil, length, PROT_READ, MAP_PRIVATE, image.fd.rawValue, off_t(offset)), source != MAP_FAILED else {
            throw .unreadable(image: name, reason: "cannot read \(name): \(SystemError("mmap", name))")
        }
        defer { munmap(source, length) }
        var done = 0
        while done < length {
            let count = min(Self.chunk, length - done)
            do { try fill.fill(at: done, from: source + done, count: count) } catch {
                throw .unreadable(image: name, reason: "cannot read \(name) (did it change while the VM started?): \(error)")
            }
            done += count
        }
    }
}

/// An image already in memory (tests, synthetic images).
public struct InMemoryImage: BootImage {
    public let bytes: [UInt8]
    public let name: String
    public init(_ bytes: [UInt8], name: String) {
        self.bytes = bytes
        self.name = name
    }
    public var count: Int { bytes.count }
    public func read(_ range: Range<Int>) throws(BootLoaderError) -> [UInt8] { Array(bytes[range.clamped(to: 0..<bytes.count)]) }
    public func place(from offset: Int, into memory: GuestMemory, at address: GuestAddress, deferrable: Bool) throws(BootLoaderError) -> PendingCopy? {
        do { try memory.write(bytes[offset...], at: address) } catch {
            throw .unreadable(image: name, reason: error.description)
        }
        return nil
    }
}

/// An image in a file, read with pread straight into guest RAM — or, deferred, filled from the
/// file's pages while the guest starts (`PendingCopy`).
public final class FileImage: BootImage, @unchecked Sendable {
    public let name: String
    public let count: Int
    let fd: FileDescriptor
    /// Whether `place` may defer the copy (tests turn it off to compare both ways).
    let defers: Bool

    /// Opens `path`; errors name it (missing, a directory, empty, unreadable).
    public init(path: String, what: String, defers: Bool = true) throws(BootLoaderError) {
        name = path
        self.defers = defers
        switch Files.kind(path) {
        case .missing: throw .unreadable(image: path, reason: "\(what) \(path) does not exist")
        case .directory: throw .unreadable(image: path, reason: "\(what) \(path) is a directory, not a file")
        // A FIFO would block the open (and --timeout never starts); a device has no size to check.
        case .other: throw .unreadable(image: path, reason: "\(what) \(path) is not a regular file (a FIFO, a device or a socket)")
        case .regular: break
        }
        do { fd = try FileDescriptor.open(path, O_RDONLY | O_NONBLOCK) } catch { throw .unreadable(image: path, reason: "cannot read \(what): \(error)") }
        var status = stat()
        guard fstat(fd.rawValue, &status) == 0 else { throw .unreadable(image: path, reason: "cannot read \(what): \(SystemError("fstat", path))") }
        // (Checked again on what was opened: the path may have been replaced meanwhile.)
        guard status.st_mode & S_IFMT == S_IFREG else { throw .unreadable(image: path, reason: "\(what) \(path) is not a regular file") }
        count = Int(status.st_size)
        guard count > 0 else { throw .unreadable(image: path, reason: "\(what) \(path) is empty") }
    }

    public func read(_ range: Range<Int>) throws(BootLoaderError) -> [UInt8] {
        let range = range.clamped(to: 0..<count)
        var bytes = [UInt8](repeating: 0, count: range.count)
        let done = bytes.withUnsafeMutableBytes { preadFully(into: $0, from: range.lowerBound) }
        guard done == range.count else { throw .unreadable(image: name, reason: "cannot read \(name): \(SystemError("pread", name))") }
        return bytes
    }

    public func place(from offset: Int, into memory: GuestMemory, at address: GuestAddress, deferrable: Bool) throws(BootLoaderError) -> PendingCopy? {
        let length = count - offset
        if deferrable, defers, offset % GuestMemory.pageSize == 0, let fill = memory.deferFill(address, length: length) {
            return PendingCopy(image: self, offset: offset, count: length, fill: fill)
        }
        let destination: UnsafeMutableRawPointer
        do { destination = try memory.hostPointer(address, length: length) } catch { throw .unreadable(image: name, reason: error.description) }
        let done = preadFully(into: UnsafeMutableRawBufferPointer(start: destination, count: length), from: offset)
        guard done == length else {
            throw .unreadable(image: name, reason: "cannot read \(name): \(SystemError("pread", "\(name) at \(offset + done)"))")
        }
        return nil
    }

    /// pread until `buffer` is full, the file ends, or an error; returns the bytes read.
    private func preadFully(into buffer: UnsafeMutableRawBufferPointer, from offset: Int) -> Int {
        var done = 0
        while done < buffer.count {
            let count = pread(fd.rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            done += count
        }
        return done
    }
}
