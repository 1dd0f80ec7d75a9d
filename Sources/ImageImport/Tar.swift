import Images
/// One tar entry's header, as POSIX ustar, GNU (long names) and PAX (long names, big numbers,
/// SCHILY.xattr.*) write it — the three formats layers come in (Go's archive/tar, GNU tar,
/// Docker, buildah). Names are bytes: a path in a layer need not be UTF-8.
public struct TarEntry: Sendable {
    public enum Kind: Sendable, Equatable {
        case regular, hardLink, symlink, characterDevice, blockDevice, directory, fifo
    }
    public var path: [UInt8]
    public var kind: Kind
    public var mode: UInt32
    public var uid: Int64
    public var gid: Int64
    public var size: Int64
    public var modified: Int64
    public var linkTarget: [UInt8]
    public var deviceMajor: UInt32
    public var deviceMinor: UInt32
    /// Extended attributes (PAX SCHILY.xattr.NAME records), in order.
    public var xattrs: [(name: String, value: [UInt8])]

    /// The path for messages.
    public var name: String { String(decoding: path, as: UTF8.self) }
}

/// Reads a tar stream header by header; `readContent` reads the current entry's bytes. Every
/// field is attacker-controlled: checksums are checked, sizes bounded, numbers range-checked, and
/// a stream that ends inside an entry is an error (never a short file taken as whole).
public final class TarReader {
    let source: any ByteStream
    let name: String
    private var block = [UInt8](repeating: 0, count: 512)
    private let scratch = ByteBuffer(65536)
    /// Bytes of the current entry not yet read, and the padding after them.
    private var remaining: Int64 = 0
    private var padding: Int = 0
    /// Headers seen (for messages: "entry 12").
    public private(set) var entries = 0

    /// Limits on metadata records (a PAX header or a GNU long name is read into memory).
    static let maximumMetadata = 1 << 20
    static let maximumPath = 4096

    public init(_ source: any ByteStream, name: String) {
        self.source = source
        self.name = name
    }

    /// The next entry, or nil at the end of the archive (two zero blocks, or one and the end).
    public func next() throws(ImageError) -> TarEntry? {
        try skipRest()
        var longPath: [UInt8]?
        var longLink: [UInt8]?
        var pax: [(String, [UInt8])] = []
        while true {
            guard try readBlock(allowEnd: true) else {
                throw ImageError("\(name): truncated (the archive ends without its end-of-archive blocks)")
            }
            if block.allSatisfy({ $0 == 0 }) {
                // The end: a second zero block usually follows (and then padding, not read).
                return nil
            }
            entries += 1
            try checkChecksum()
            let type = block[156]
            let size = try number(124, 12, "size")
            guard size >= 0 else { throw entryError("negative size") }
            switch type {
            case UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g"):
                guard size <= Self.maximumMetadata else { throw entryError("a \(Character(UnicodeScalar(type))) record of \(size) bytes (at most \(Self.maximumMetadata))") }
                var data = try readData(Int(size))
                switch type {
                case UInt8(ascii: "L"):
                    while data.last == 0 { data.removeLast() }
                    longPath = data
                case UInt8(ascii: "K"):
                    while data.last == 0 { data.removeLast() }
                    longLink = data
                case UInt8(ascii: "x"):
                    pax = try parsePAX(data)
                default:
                    break  // global PAX headers: nothing in them applies to a layer's files
                }
                continue
            default:
                break
            }
            let kind: TarEntry.Kind
            switch type {
            case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): kind = .regular
            case UInt8(ascii: "1"): kind = .hardLink
            case UInt8(ascii: "2"): kind = .symlink
            case UInt8(ascii: "3"): kind = .characterDevice
            case UInt8(ascii: "4"): kind = .blockDevice
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "6"): kind = .fifo
            case UInt8(ascii: "S"): throw entryError("a GNU sparse file (not supported in a layer)")
            default: throw entryError("an unknown entry type '\(printable(type))'")
            }
            var path = longPath ?? field(0, 100)
            if longPath == nil, isUstar {
                let prefix = field(345, 155)
                if !prefix.isEmpty { path = prefix + [UInt8(ascii: "/")] + path }
            }
            var entry = TarEntry(path: path, kind: kind, mode: UInt32(try number(100, 8, "mode") & 0o7777),
                                 uid: try number(108, 8, "uid"), gid: try number(116, 8, "gid"), size: size,
                                 modified: try number(136, 12, "mtime"), linkTarget: longLink ?? field(157, 100),
                                 deviceMajor: 0, deviceMinor: 0, xattrs: [])
            if kind == .characterDevice || kind == .blockDevice {
                let major = try number(329, 8, "devmajor"), minor = try number(337, 8, "devminor")
                guard (0...0xfff).contains(major), (0...0xfffff).contains(minor) else { throw entryError("device number \(major):\(minor) out of range") }
                entry.deviceMajor = UInt32(major)
                entry.deviceMinor = UInt32(minor)
            }
            for (key, value) in pax {
                switch key {
                case "path": entry.path = value
                case "linkpath": entry.linkTarget = value
                case "size": entry.size = try paxNumber(key, value)
                case "uid": entry.uid = try paxNumber(key, value)
                case "gid": entry.gid = try paxNumber(key, value)
                case "mtime": entry.modified = try paxNumber(key, value, fraction: true)
                default:
                    if key.hasPrefix("SCHILY.xattr.") { entry.xattrs.append((String(key.dropFirst(13)), value)) }
                }
            }
            guard entry.uid >= 0, entry.uid <= Int64(UInt32.max - 1), entry.gid >= 0, entry.gid <= Int64(UInt32.max - 1) else {
                throw entryError("owner \(entry.uid):\(entry.gid) out of range")
            }
            guard entry.size >= 0 else { throw entryError("negative size") }
            guard !entry.path.isEmpty, entry.path.count <= Self.maximumPath, !entry.path.contains(0) else {
                throw entryError(entry.path.isEmpty ? "an empty path" : "a path longer than \(Self.maximumPath) bytes or with a NUL byte")
            }
            guard entry.linkTarget.count <= Self.maximumPath, !entry.linkTarget.contains(0) else { throw entryError("a link target longer than \(Self.maximumPath) bytes or with a NUL byte") }
            // Only regular files have contents; the others' size field is ignored (as GNU tar does)
            // except that the bytes are skipped.
            remaining = entry.size
            padding = Int((512 - entry.size % 512) % 512)
            if entry.kind != .regular { try skipRest() }
            return entry
        }
    }

    /// Reads the current regular file's next bytes; 0 at its end.
    public func readContent(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        guard remaining > 0 else { return 0 }
        let want = Int(min(Int64(buffer.count), remaining))
        let got = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        guard got > 0 else { throw ImageError("\(name): truncated inside entry \(entries)") }
        remaining -= Int64(got)
        return got
    }

    // MARK: - Blocks and fields

    private var isUstar: Bool { block[257..<262].elementsEqual(Array("ustar".utf8)) }

    private func entryError(_ what: String) -> ImageError {
        ImageError("\(name): entry \(entries): \(what)")
    }

    private func printable(_ byte: UInt8) -> String {
        byte >= 32 && byte < 127 ? String(Character(UnicodeScalar(byte))) : "\\x" + String(byte, radix: 16)
    }

    /// Reads one 512-byte block; false at a clean end of the stream (only where `allowEnd`).
    private func readBlock(allowEnd: Bool) throws(ImageError) -> Bool {
        var filled = 0
        while filled < 512 {
            let got = try source.read(into: scratch[filled..<512])
            if got == 0 {
                if filled == 0 && allowEnd { return false }
                throw ImageError("\(name): truncated inside a header")
            }
            filled += got
        }
        block = Array(UnsafeRawBufferPointer(scratch[0..<512]))
        return true
    }

    private func readData(_ count: Int) throws(ImageError) -> [UInt8] {
        var data: [UInt8] = []
        data.reserveCapacity(count)
        while data.count < count {
            let got = try source.read(into: scratch[0..<min(scratch.all.count, count - data.count)])
            guard got > 0 else { throw ImageError("\(name): truncated inside entry \(entries)") }
            data += UnsafeRawBufferPointer(scratch[0..<got])
        }
        remaining = 0
        padding = (512 - count % 512) % 512
        try skipRest()
        return data
    }

    /// Skips what is left of the current entry and its padding.
    private func skipRest() throws(ImageError) {
        var left = remaining + Int64(padding)
        while left > 0 {
            let want = Int(min(Int64(scratch.all.count), left))
            let got = try source.read(into: scratch[0..<want])
            guard got > 0 else { throw ImageError("\(name): truncated inside entry \(entries)") }
            left -= Int64(got)
        }
        remaining = 0
        padding = 0
    }

    /// A NUL-terminated text field.
    private func field(_ offset: Int, _ length: Int) -> [UInt8] {
        let slice = block[offset..<(offset + length)]
        return Array(slice.prefix { $0 != 0 })
    }

    /// A numeric field: octal digits (space or NUL padded), or GNU base-256 (first byte 0x80 or 0xff).
    private func number(_ offset: Int, _ length: Int, _ what: String) throws(ImageError) -> Int64 {
        let bytes = block[offset..<(offset + length)]
        if let first = bytes.first, first & 0x80 != 0 {
            // Negative (0xff): only an mtime before 1970 is; taken as -1 (and refused elsewhere).
            if first == 0xff { return -1 }
            var value = Int64(first & 0x7f)
            for byte in bytes.dropFirst() {
                let (shifted, overflow) = value.multipliedReportingOverflow(by: 256)
                let (sum, carry) = shifted.addingReportingOverflow(Int64(byte))
                guard !overflow, !carry else { throw entryError("\(what): base-256 number out of range") }
                value = sum
            }
            return value
        }
        var value: Int64 = 0
        var seenDigit = false
        var ended = false
        for byte in bytes {
            if byte == 0 || byte == 32 { if seenDigit { ended = true }; continue }
            guard !ended, byte >= 48, byte <= 55 else { throw entryError("\(what): not an octal number") }
            let (shifted, overflow) = value.multipliedReportingOverflow(by: 8)
            guard !overflow else { throw entryError("\(what): number out of range") }
            value = shifted + Int64(byte - 48)
            seenDigit = true
        }
        return value
    }

    /// The header checksum: the sum of its bytes with the checksum field taken as spaces
    /// (unsigned, or signed as some old tars computed it).
    private func checkChecksum() throws(ImageError) {
        let stored = try number(148, 8, "checksum")
        var unsigned: Int64 = 0, signed: Int64 = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? UInt8(32) : byte
            unsigned += Int64(value)
            signed += Int64(Int8(bitPattern: value))
        }
        guard stored == unsigned || stored == signed else { throw entryError("header checksum mismatch (not a tar archive, or corrupt)") }
    }

    /// PAX records: "LENGTH KEY=VALUE\n", LENGTH counting the whole record.
    private func parsePAX(_ data: [UInt8]) throws(ImageError) -> [(String, [UInt8])] {
        var records: [(String, [UInt8])] = []
        var index = 0
        while index < data.count {
            if data[index] == 0 { break }  // padding some writers leave
            var length = 0
            var cursor = index
            while cursor < data.count, data[cursor] >= 48, data[cursor] <= 57, length < 1 << 24 {
                length = length * 10 + Int(data[cursor] - 48)
                cursor += 1
            }
            guard cursor < data.count, data[cursor] == 32, length > cursor - index + 1, index + length <= data.count,
                  data[index + length - 1] == 10 else { throw entryError("a malformed PAX record") }
            let record = data[(cursor + 1)..<(index + length - 1)]
            guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { throw entryError("a PAX record without '='") }
            records.append((String(decoding: record[record.startIndex..<equals], as: UTF8.self), Array(record[(equals + 1)...])))
            index += length
        }
        return records
    }

    private func paxNumber(_ key: String, _ value: [UInt8], fraction: Bool = false) throws(ImageError) -> Int64 {
        var text = String(decoding: value, as: UTF8.self)
        if fraction, let dot = text.firstIndex(of: ".") { text = String(text[..<dot]) }
        guard let number = Int64(text) else { throw entryError("PAX \(key)=\(text): not a number") }
        return number
    }
}
