import CArchive

/// A content digest as OCI writes it: `sha256:` and 64 lowercase hex digits. Only SHA-256 is
/// taken (every image in the wild uses it; sha512 is allowed by the spec and refused here by name).
/// Parsed strictly: a digest names a file in the store, so nothing but hex may reach a path.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The 64 hex digits.
    public let hex: String

    public init?(_ text: String) {
        guard text.hasPrefix("sha256:") else { return nil }
        let hex = String(text.dropFirst(7))
        guard Digest.isHex64(hex) else { return nil }
        self.hex = hex
    }

    public init?(hex: String) {
        guard Digest.isHex64(hex) else { return nil }
        self.hex = hex
    }

    init(bytes: [UInt8]) {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in bytes { text.append(digits[Int(byte >> 4)]); text.append(digits[Int(byte & 15)]) }
        hex = String(decoding: text, as: UTF8.self)
    }

    public var description: String { "sha256:" + hex }
    /// The first 12 hex digits, as `docker images` shows an id.
    public var short: String { String(hex.prefix(12)) }

    public static func < (a: Digest, b: Digest) -> Bool { a.hex < b.hex }

    static func isHex64(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// The digest of `bytes`.
    public static func of(_ bytes: [UInt8]) -> Digest {
        let hash = SHA256()
        hash.update(bytes)
        return hash.finish()
    }
}

/// SHA-256 over bytes fed in pieces (OpenSSL's, through CArchive).
public final class SHA256 {
    private var state: OpaquePointer?

    public init() {
        state = carchive_sha256_new()
        precondition(state != nil, "SHA-256: out of memory")
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        carchive_sha256_update(state, bytes.baseAddress, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest; the hash is spent.
    public func finish() -> Digest {
        var out = [UInt8](repeating: 0, count: 32)
        precondition(state != nil, "SHA-256 finished twice")
        carchive_sha256_finish(state, &out)
        state = nil
        return Digest(bytes: out)
    }

    deinit { if let state { carchive_sha256_free(state) } }
}
