import HostOS
import Images
#if canImport(Glibc)
import Glibc
#endif

/// Stops an import before it fills the store's file system. A layer is hostile: a few hundred
/// kilobytes of gzip or zstd can unpack to terabytes (a decompression bomb), and a layer with
/// millions of empty files runs out of inodes long before bytes. Neither Docker nor containerd
/// bounds this; a disk filled by an image import takes down everything else on the host.
///
/// The guard keeps a reserve free — 5% of the file system, at most 1 GiB, and 5% of its inodes —
/// and checks `fstatvfs` as data is written: every half reserve of bytes (at most 64 MiB) and of
/// inodes (at most 4,096 entries), so the import stops with at least half the reserve still free.
struct SpaceGuard {
    /// The directory whose file system is watched (the store's tmp/).
    let directory: Int32
    let name: String
    let reserveBytes: UInt64
    let reserveInodes: UInt64
    let checkEveryBytes: Int64
    let checkEveryEntries: Int
    private var bytesSinceCheck: Int64 = 0
    private var entriesSinceCheck = 0

    static let maximumReserve: UInt64 = 1 << 30

    /// A guard for the file system holding `directory` (an open descriptor the caller keeps).
    init(directory: Int32, name: String) throws(ImageError) {
        var info = statvfs()
        guard fstatvfs(directory, &info) == 0 else { throw ImageError(SystemError("statvfs", name)) }
        self.directory = directory
        self.name = name
        let total = UInt64(info.f_blocks) * UInt64(info.f_frsize)
        reserveBytes = min(Self.maximumReserve, total / 20)
        // Some file systems (btrfs) report no inode count: then there is none to keep.
        reserveInodes = UInt64(info.f_files) / 20
        checkEveryBytes = Int64(max(1 << 16, min(64 << 20, reserveBytes / 2)))
        checkEveryEntries = reserveInodes == 0 ? 4096 : Int(max(1, min(4096, reserveInodes / 2)))
    }

    /// Counts `bytes` about to be (or just) written; checks the file system when enough have been.
    mutating func wrote(_ bytes: Int) throws(ImageError) {
        bytesSinceCheck += Int64(bytes)
        if bytesSinceCheck >= checkEveryBytes { try check() }
    }

    /// Writes all of `bytes` to `fd` (a file on the watched file system), counted first;
    /// `what` names the file in errors.
    mutating func write(_ fd: Int32, _ bytes: UnsafeMutableRawBufferPointer, what: @autoclosure () -> String) throws(ImageError) {
        try wrote(bytes.count)
        var offset = 0
        while offset < bytes.count {
            let wrote = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if wrote < 0 && errno == EINTR { continue }
            guard wrote > 0 else { throw ImageError(SystemError("write", what())) }
            offset += wrote
        }
    }

    /// Counts a new entry (file, directory, link); checks every `checkEveryEntries`.
    mutating func created() throws(ImageError) {
        entriesSinceCheck += 1
        if entriesSinceCheck >= checkEveryEntries { try check() }
    }

    mutating func check() throws(ImageError) {
        bytesSinceCheck = 0
        entriesSinceCheck = 0
        var info = statvfs()
        guard fstatvfs(directory, &info) == 0 else { throw ImageError(SystemError("statvfs", name)) }
        let free = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        if free < reserveBytes {
            throw ImageError("stopped: the file system under \(name) is down to \(Self.mebibytes(free)) free, below the \(Self.mebibytes(reserveBytes)) an import keeps free (the image unpacks to more than the disk holds: a decompression bomb, or too small a disk)")
        }
        if reserveInodes > 0 && UInt64(info.f_favail) < reserveInodes {
            throw ImageError("stopped: the file system under \(name) is down to \(info.f_favail) free inodes, below the \(reserveInodes) an import keeps free (the image has more files than the disk holds)")
        }
    }

    static func mebibytes(_ bytes: UInt64) -> String {
        let tenths = (bytes * 10 + (1 << 19)) >> 20
        return "\(tenths / 10).\(tenths % 10) MiB"
    }
}
