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

    package init(bytes: [UInt8]) {
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

}
