import CArchive
import Images

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

extension Digest {
    /// The digest of `bytes`.
    public static func of(_ bytes: [UInt8]) -> Digest {
        let hash = SHA256()
        hash.update(bytes)
        return hash.finish()
    }
}
