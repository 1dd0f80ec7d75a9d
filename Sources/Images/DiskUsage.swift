#if canImport(Glibc)
import Glibc
#endif

/// Bytes a directory tree takes: apparent (file sizes) and allocated (blocks), each inode once
/// (hard links within a layer are stored once). Symlinks are never followed.
public struct DiskUsage: Sendable, Equatable {
    public var apparent: Int64 = 0
    public var allocated: Int64 = 0
    public var inodes = 0

    public static func measure(_ path: String) -> DiskUsage {
        var usage = DiskUsage()
        var seen = Set<UInt64>()
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return usage }
        walk(fd, &usage, &seen)
        return usage
    }

    /// Adds what is under the open directory `fd` (which it closes).
    private static func walk(_ fd: Int32, _ usage: inout DiskUsage, _ seen: inout Set<UInt64>) {
        var info = stat()
        if fstat(fd, &info) == 0 { usage.allocated += Int64(info.st_blocks) * 512; usage.inodes += 1 }
        guard let directory = fdopendir(fd) else { close(fd); return }
        defer { closedir(directory) }
        let inner = dirfd(directory)
        while let item = readdir(directory) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name == [46] || name == [46, 46] { continue }
            var child = stat()
            guard name.withCString({ fstatat(inner, $0, &child, AT_SYMLINK_NOFOLLOW) }) == 0 else { continue }
            if child.st_mode & S_IFMT == S_IFDIR {
                let sub = name.withCString { openat(inner, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
                if sub >= 0 { walk(sub, &usage, &seen) }
                continue
            }
            if child.st_nlink > 1 && !seen.insert(UInt64(child.st_ino)).inserted { continue }
            usage.inodes += 1
            usage.allocated += Int64(child.st_blocks) * 512
            if child.st_mode & S_IFMT == S_IFREG || child.st_mode & S_IFMT == S_IFLNK { usage.apparent += Int64(child.st_size) }
        }
    }
}
