/// One entry of an image: what it is, and its permission bits.
public struct ImageEntry: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case directory
        case file([UInt8])
        /// A symbolic link; Tandem's images use relative targets so they work in any root.
        case symlink(String)
        case characterDevice(major: UInt32, minor: UInt32)
        case blockDevice(major: UInt32, minor: UInt32)
        case fifo
    }

    /// Path inside the image, without a leading slash ("bin/sh").
    public var path: String
    public var kind: Kind
    /// Permission bits (0o755); the file-type bits come from `kind`.
    public var permissions: UInt32
    /// Owner (root for Tandem's own image; a user's image keeps its layers' owners).
    public var uid: UInt32
    public var gid: UInt32

    public init(path: String, kind: Kind, permissions: UInt32, uid: UInt32 = 0, gid: UInt32 = 0) {
        self.path = path
        self.kind = kind
        self.permissions = permissions
        self.uid = uid
        self.gid = gid
    }

    /// st_mode: type bits (S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR) and permissions.
    public var mode: UInt32 {
        let type: UInt32
        switch kind {
        case .directory: type = 0o040000
        case .file: type = 0o100000
        case .symlink: type = 0o120000
        case .characterDevice: type = 0o020000
        case .blockDevice: type = 0o060000
        case .fifo: type = 0o010000
        }
        return type | (permissions & 0o7777)
    }
}

/// Writes the "newc" cpio format (magic 070701), the format the Linux kernel unpacks as an
/// initramfs (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a 110-byte
/// ASCII header of 13 eight-digit hex fields, the NUL-terminated name padded to 4 bytes, then the
/// data padded to 4 bytes; a `TRAILER!!!` entry ends the archive.
///
/// Output is reproducible: entries sorted by path, inode numbers assigned in that order, owners
/// as given (root unless said), and one fixed modification time for everything.
public enum CpioWriter {
    public static let magic = "070701"
    public static let trailer = "TRAILER!!!"

    public static func archive(_ entries: [ImageEntry], modificationTime: UInt32 = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(entries.reduce(512) { total, entry in
            if case .file(let bytes) = entry.kind { return total + bytes.count + 128 + entry.path.utf8.count }
            return total + 128 + entry.path.utf8.count
        })
        for (index, entry) in sorted(entries).enumerated() {
            let data: [UInt8]
            var rdev: (UInt32, UInt32) = (0, 0)
            switch entry.kind {
            case .directory: data = []
            case .file(let bytes): data = bytes
            case .symlink(let target): data = Array(target.utf8)
            case .characterDevice(let major, let minor), .blockDevice(let major, let minor): data = []; rdev = (major, minor)
            case .fifo: data = []
            }
            let nlink: UInt32 = entry.kind == .directory ? 2 : 1
            appendHeader(to: &out, inode: UInt32(index + 1), mode: entry.mode, uid: entry.uid, gid: entry.gid, nlink: nlink,
                         mtime: modificationTime, size: UInt32(data.count), rdev: rdev, name: entry.path)
            out.append(contentsOf: data)
            pad(&out)
        }
        appendHeader(to: &out, inode: 0, mode: 0, uid: 0, gid: 0, nlink: 1, mtime: 0, size: 0, rdev: (0, 0), name: trailer)
        return out
    }

    /// Entries in archive order: by path, so every directory precedes what it holds.
    public static func sorted(_ entries: [ImageEntry]) -> [ImageEntry] {
        entries.sorted { lhs, rhs in
            lhs.path.split(separator: "/").lexicographicallyPrecedes(rhs.path.split(separator: "/"))
        }
    }

    static func appendHeader(to out: inout [UInt8], inode: UInt32, mode: UInt32, uid: UInt32, gid: UInt32, nlink: UInt32, mtime: UInt32,
                             size: UInt32, rdev: (UInt32, UInt32), name: String) {
        out.append(contentsOf: magic.utf8)
        let nameBytes = Array(name.utf8)
        for field in [inode, mode, uid, gid, nlink, mtime, size, 0, 0, rdev.0, rdev.1, UInt32(nameBytes.count + 1), 0] {
            out.append(contentsOf: hex8(field))
        }
        out.append(contentsOf: nameBytes)
        out.append(0)
        pad(&out)
    }

    static func hex8(_ value: UInt32) -> [UInt8] {
        let digits = Array("0123456789ABCDEF".utf8)
        return (0..<8).reversed().map { digits[Int((value >> (UInt32($0) * 4)) & 0xf)] }
    }

    static func pad(_ out: inout [UInt8]) {
        while out.count % 4 != 0 { out.append(0) }
    }
}
