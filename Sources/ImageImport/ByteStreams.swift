import HostOS
import Images
import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Bytes read in order: a file (or a range of one), a decompressor, a hasher in between.
/// `read` fills as much of `buffer` as it can and returns 0 only at the end.
public protocol ByteStream: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int
}

extension ByteStream {
    /// Everything up to `limit` bytes; more than that is an error naming `what`.
    func readAll(limit: Int, what: String) throws(ImageError) -> [UInt8] {
        var bytes: [UInt8] = []
        let chunk = ByteBuffer(65536)
        while true {
            let count = try read(into: chunk.all)
            if count == 0 { return bytes }
            bytes += UnsafeRawBufferPointer(rebasing: chunk.all[0..<count])
            if bytes.count > limit { throw ImageError("\(what): larger than \(limit) bytes") }
        }
    }
}

/// A fixed buffer owned by its object (typed throws do not pass through withUnsafeMutableBytes).
final class ByteBuffer {
    let all: UnsafeMutableRawBufferPointer
    init(_ count: Int) { all = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16) }
    deinit { all.deallocate() }
    subscript(range: Range<Int>) -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: all[range]) }
}

/// `length` bytes of a file from `offset` (a blob in a directory, or a member of an archive,
/// read in place with pread). Reading stops at `length` even if the file goes on.
public final class FileRange: ByteStream {
    let fd: FileDescriptor
    let name: String
    private var offset: Int64
    private var remaining: Int64

    init(fd: FileDescriptor, name: String, offset: Int64, length: Int64) {
        self.fd = fd
        self.name = name
        self.offset = offset
        remaining = length
    }

    /// A whole file, opened read-only.
    public convenience init(path: String) throws(ImageError) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, O_RDONLY) } catch { throw ImageError(error) }
        var info = stat()
        guard fstat(fd.rawValue, &info) == 0 else { throw ImageError(SystemError("fstat", path)) }
        self.init(fd: fd, name: path, offset: 0, length: Int64(info.st_size))
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        guard remaining > 0, buffer.count > 0 else { return 0 }
        let want = Int(min(Int64(buffer.count), remaining))
        var got: Int
        repeat { got = pread(fd.rawValue, buffer.baseAddress, want, off_t(offset)) } while got < 0 && errno == EINTR
        guard got >= 0 else { throw ImageError(SystemError("pread", name)) }
        // A file that ends early (truncated archive or blob): the reader above sees the shortfall.
        if got == 0 { remaining = 0; return 0 }
        offset += Int64(got)
        remaining -= Int64(got)
        return got
    }
}

/// Passes bytes through while hashing them (SHA-256) and counting them.
public final class HashingStream: ByteStream {
    let source: any ByteStream
    private let hash = SHA256()
    public private(set) var count: Int64 = 0

    init(_ source: any ByteStream) { self.source = source }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        let got = try source.read(into: buffer)
        if got > 0 {
            hash.update(UnsafeRawBufferPointer(rebasing: buffer[0..<got]))
            count += Int64(got)
        }
        return got
    }

    /// The digest of everything read so far (call once, after the end).
    func finish() -> Digest {
        hash.finish()
    }

    /// Reads (and hashes) whatever is left: a layer's tar may end before its blob does (padding).
    func drain() throws(ImageError) {
        let chunk = ByteBuffer(65536)
        while try read(into: chunk.all) > 0 {}
    }
}

/// How a blob or an archive is compressed: what its media type says, or its first bytes show.
public enum Compression: String, Sendable {
    case none, gzip, zstd

    /// From a blob's first bytes: gzip starts 1f 8b, a zstd frame 28 b5 2f fd (RFC 8878 3.1.1).
    public static func sniff(_ head: [UInt8]) -> Compression {
        if head.count >= 2 && head[0] == 0x1f && head[1] == 0x8b { return .gzip }
        if head.count >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd { return .zstd }
        return .none
    }

    /// Formats `docker load` also reads that Tandem does not: named in the refusal.
    static func unsupported(_ head: [UInt8]) -> String? {
        if head.starts(with: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) { return "xz" }
        if head.starts(with: [0x42, 0x5a, 0x68]) { return "bzip2" }
        return nil
    }
}

/// Decompression (zlib or libzstd, through CArchive) of another stream.
public final class DecompressingStream: ByteStream {
    let source: any ByteStream
    let name: String
    private let decoder: OpaquePointer
    private let input = ByteBuffer(1 << 17)
    private var inputStart = 0, inputEnd = 0
    private var inputFinished = false
    private var done = false

    /// `compression` is .gzip or .zstd; `name` prefixes every error.
    public init(_ source: any ByteStream, _ compression: Compression, name: String) throws(ImageError) {
        let format: Int32 = compression == .zstd ? Int32(CARCHIVE_ZSTD.rawValue) : Int32(CARCHIVE_GZIP.rawValue)
        guard compression != .none, let decoder = carchive_decoder_new(format) else { throw ImageError("\(name): \(compression.rawValue): out of memory") }
        self.source = source
        self.name = name
        self.decoder = decoder
    }

    deinit { carchive_decoder_free(decoder) }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        while !done {
            if inputStart == inputEnd && !inputFinished {
                let got = try source.read(into: input.all)
                inputStart = 0
                inputEnd = got
                if got == 0 { inputFinished = true }
            }
            var consumed = 0
            var finished: Int32 = 0
            var message: UnsafePointer<CChar>?
            let written = carchive_decoder_step(decoder, input.all.baseAddress! + inputStart, inputEnd - inputStart, inputFinished ? 1 : 0,
                                                buffer.baseAddress, buffer.count, &consumed, &finished, &message)
            inputStart += consumed
            if written == -1 { throw ImageError("\(name): not valid data (\(message.map { String(cString: $0) } ?? "corrupt"))") }
            if written == -2 { throw ImageError("\(name): truncated (the compressed stream ends early)") }
            if finished != 0 { done = true }
            if written > 0 { return written }
        }
        return 0
    }
}

/// Bytes in memory as a stream (the fuzz target's input; small blobs).
public final class BytesStream: ByteStream {
    private let bytes: [UInt8]
    private var offset = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        let count = min(buffer.count, bytes.count - offset)
        guard count > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + offset, byteCount: count) }
        offset += count
        return count
    }
}
