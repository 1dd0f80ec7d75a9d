import GuestMemory
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// virtio-blk (virtio 1.x 5.2) on a raw file: read, write, flush and get-id, the requests
/// Firecracker serves. The request's bytes are read and written as streams across the chain's
/// buffers (any layout, as VERSION_1 allows): 16 header bytes (type, reserved, sector) and a
/// write's data from the readable buffers; a read's data and the one status byte, last, into the
/// writable ones. A request the disk cannot serve — past its end, a write to a read-only disk, a
/// length that is not whole sectors, an unknown type — completes with an error status; only a
/// chain without room for the status breaks the rules (the transport then resets the device).
public final class VirtioBlock: VirtioDevice, @unchecked Sendable {
    public static let sectorSize: UInt64 = 512
    /// Request types and status values (5.2.6).
    enum RequestType { static let read: UInt32 = 0, write: UInt32 = 1, flush: UInt32 = 4, getID: UInt32 = 8 }
    enum RequestStatus { static let ok: UInt8 = 0, ioError: UInt8 = 1, unsupported: UInt8 = 2 }
    /// Feature bits (5.2.3).
    public static let featureSegmentMax: UInt64 = 1 << 2
    public static let featureReadOnly: UInt64 = 1 << 5
    public static let featureFlush: UInt64 = 1 << 9
    /// seg_max: data buffers per request (a queue's descriptors less the header's and the
    /// status's, as QEMU says). Without SEG_MAX Linux sends one segment per request: 4 KiB.
    public static let segmentMax = UInt32(Virtqueue.maximumSize) - 2
    static let idLength = 20

    public let path: String
    public let readOnly: Bool
    let fd: FileDescriptor
    /// The disk's size in sectors (a partial last sector is not offered).
    public let capacity: UInt64
    /// What GET_ID answers (at most 20 bytes).
    let serial: [UInt8]

    /// Opens the raw disk at `path` (read-only on the host when `readOnly`): a regular file,
    /// named in every error.
    public init(path: String, readOnly: Bool, serial: String = "tandem") throws(SystemError) {
        let file = try FileDescriptor.open(path, (readOnly ? O_RDONLY : O_RDWR) | O_NONBLOCK)
        var info = stat()
        guard fstat(file.rawValue, &info) == 0 else { throw SystemError("fstat", path) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw SystemError("open (not a regular file)", path, errno: EINVAL) }
        // One writer at a time, as QEMU's image locking: a disk two guests write at once (two
        // restores of one snapshot, a VM and its restored copy) is corrupted. Readers share.
        if flock(file.rawValue, (readOnly ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
            let code = errno
            throw SystemError("flock", "\(path): \(code == EWOULDBLOCK ? (readOnly ? "another VM writes to it" : "another VM uses it") + " (a disk written by two guests at once is corrupted; copy it)" : "")", errno: code)
        }
        self.path = path
        self.readOnly = readOnly
        fd = file
        capacity = UInt64(info.st_size) / Self.sectorSize
        self.serial = Array(serial.utf8.prefix(Self.idLength))
    }

    public var deviceID: UInt32 { 2 }
    public var features: UInt64 { Self.featureFlush | Self.featureSegmentMax | (readOnly ? Self.featureReadOnly : 0) }
    public var queueCount: Int { 1 }
    public func reset() {}

    /// virtio_blk_config: capacity (le64) at 0, seg_max (le32) at 12; the rest (size_max,
    /// geometry, blk_size, ...) belongs to features not offered and reads as 0.
    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for index in 0..<data.count {
            let byte = offset + index
            data[index] = switch byte {
            case 0..<8: UInt8(truncatingIfNeeded: capacity >> (8 * UInt64(byte)))
            case 12..<16: UInt8(truncatingIfNeeded: Self.segmentMax >> (8 * UInt32(byte - 12)))
            default: 0
            }
        }
    }

    public func handle(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) throws(VirtqueueError) -> UInt32 {
        // Readable buffers come first, writable ones after (the walker made sure): one pass finds
        // where they split and how long each stream is.
        var room: UInt64 = 0, readableBytes: UInt64 = 0, firstWritable = chain.buffers.count
        for (index, buffer) in chain.buffers.enumerated() {
            if buffer.writable { room += UInt64(buffer.length); firstWritable = min(firstWritable, index) } else { readableBytes += UInt64(buffer.length) }
        }
        guard room >= 1 else { throw VirtqueueError("block request at \(chain.head): no writable byte for its status") }
        let readable = chain.buffers[..<firstWritable], writable = chain.buffers[firstWritable...]
        let dataIn = room - 1
        var status = RequestStatus.ok
        var written: UInt64 = 0
        if readableBytes < 16 {
            status = RequestStatus.ioError
        } else {
            let header = try HostBuffers.gather(readable, from: 0, count: 16, memory)
            let type = UInt32(header[0]) | UInt32(header[1]) << 8 | UInt32(header[2]) << 16 | UInt32(header[3]) << 24
            let sector = (0..<8).reduce(UInt64(0)) { $0 | UInt64(header[8 + $1]) << (8 * UInt64($1)) }
            let dataOut = readableBytes - 16
            switch type {
            case RequestType.read:
                status = transfer(write: false, sector: sector, length: dataIn, buffers: writable, skip: 0, memory)
                if status == RequestStatus.ok { written = dataIn }
            case RequestType.write:
                status = readOnly ? RequestStatus.ioError : transfer(write: true, sector: sector, length: dataOut, buffers: readable, skip: 16, memory)
            case RequestType.flush:
                status = readOnly || fdatasync(fd.rawValue) == 0 ? RequestStatus.ok : RequestStatus.ioError
            case RequestType.getID:
                let id = serial + [UInt8](repeating: 0, count: Self.idLength - serial.count)
                let count = Int(min(UInt64(Self.idLength), dataIn))
                try HostBuffers.scatter(Array(id.prefix(count)), into: writable, at: 0, memory)
                written = UInt64(count)
            default:
                status = RequestStatus.unsupported
            }
        }
        try HostBuffers.scatter([status], into: writable, at: dataIn, memory)
        return UInt32(written + 1)
    }

    /// Moves `length` bytes between the disk at `sector` and `buffers` (after their first `skip`
    /// bytes): whole sectors inside the disk, else an I/O error status. The buffers go to the
    /// kernel as one iovec array (preadv/pwritev: one system call per request, however many
    /// segments the driver used), each checked to lie in guest RAM first.
    private func transfer(write: Bool, sector: UInt64, length: UInt64, buffers: ArraySlice<VirtqueueBuffer>, skip: UInt64, _ memory: GuestMemory) -> UInt8 {
        guard length % Self.sectorSize == 0, sector <= capacity, length / Self.sectorSize <= capacity - sector else { return RequestStatus.ioError }
        guard var vectors = HostBuffers.vectors(buffers, skipping: skip, length: length, memory) else { return RequestStatus.ioError }
        var offset = off_t(sector * Self.sectorSize)
        var first = 0
        // A short transfer (a signal, a file system's limit) goes on from where it stopped.
        while first < vectors.count {
            // An indirect table can hold more buffers than IOV_MAX (1024): at most that many per call.
            let moved: Int = vectors[first...].withUnsafeBufferPointer { slice -> Int in
                let count = Int32(min(slice.count, HostBuffers.maximumVectors))
                return write ? pwritev(fd.rawValue, slice.baseAddress, count, offset) : preadv(fd.rawValue, slice.baseAddress, count, offset)
            }
            if moved < 0 && errno == EINTR { continue }
            guard moved > 0 else { return RequestStatus.ioError }
            offset += off_t(moved)
            var left = moved
            while first < vectors.count && left >= vectors[first].iov_len { left -= vectors[first].iov_len; first += 1 }
            if left > 0 {
                vectors[first].iov_base = vectors[first].iov_base! + left
                vectors[first].iov_len -= left
            }
        }
        return RequestStatus.ok
    }
}
