import GuestMemory
#if canImport(Glibc)
import Glibc
#endif

/// A chain's buffers as the host kernel takes them: iovecs pointing into guest RAM, for one
/// preadv/pwritev/readv/writev per request however many buffers the driver used.
enum HostBuffers {
    /// IOV_MAX on Linux: the most iovecs one call takes.
    static let maximumVectors = 1024

    /// `length` bytes of `buffers` after their first `skip` bytes, as iovecs (empty buffers left
    /// out); nil when a buffer lies outside guest RAM or the buffers hold fewer bytes.
    static func vectors(_ buffers: ArraySlice<VirtqueueBuffer>, skipping skip: UInt64, length: UInt64, _ memory: GuestMemory) -> [iovec]? {
        var vectors: [iovec] = []
        vectors.reserveCapacity(buffers.count)
        var skip = skip, remaining = length
        for buffer in buffers where remaining > 0 {
            var bufferLength = UInt64(buffer.length)
            var address = buffer.address
            if skip > 0 {
                let skipped = min(skip, bufferLength)
                skip -= skipped
                bufferLength -= skipped
                address = address + skipped
            }
            let count = Int(min(bufferLength, remaining))
            guard count > 0 else { continue }
            guard let host = try? memory.hostPointer(address, length: count) else { return nil }
            vectors.append(iovec(iov_base: host, iov_len: count))
            remaining -= UInt64(count)
        }
        return remaining == 0 ? vectors : nil
    }

    /// `count` bytes from the readable stream at `from`.
    static func gather(_ buffers: ArraySlice<VirtqueueBuffer>, from start: UInt64, count: Int, _ memory: GuestMemory) throws(VirtqueueError) -> [UInt8] {
        var bytes: [UInt8] = []
        var position: UInt64 = 0
        for buffer in buffers where bytes.count < count {
            let end = position + UInt64(buffer.length)
            defer { position = end }
            guard end > start else { continue }
            let begin = max(start, position) - position
            let take = min(UInt64(count - bytes.count), UInt64(buffer.length) - begin)
            do { bytes += try memory.read(Int(take), at: buffer.address + begin) } catch {
                throw VirtqueueError("a buffer at \(buffer.address + begin) (\(take) bytes): outside guest RAM")
            }
        }
        return bytes
    }

    /// Writes `bytes` into the writable stream at `at`.
    static func scatter(_ bytes: [UInt8], into buffers: ArraySlice<VirtqueueBuffer>, at start: UInt64, _ memory: GuestMemory) throws(VirtqueueError) {
        var position: UInt64 = 0, done = 0
        for buffer in buffers where done < bytes.count {
            let end = position + UInt64(buffer.length)
            defer { position = end }
            guard end > start + UInt64(done) else { continue }
            let begin = start + UInt64(done) - position
            let take = Int(min(UInt64(bytes.count - done), UInt64(buffer.length) - begin))
            do { try memory.write(bytes[done..<(done + take)], at: buffer.address + begin) } catch {
                throw VirtqueueError("a buffer at \(buffer.address + begin) (\(take) bytes): outside guest RAM")
            }
            done += take
        }
    }
}
