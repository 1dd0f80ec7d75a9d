import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Removing a tree inside the store (a layer, an import's scratch directory) without ever
/// following a symlink: a layer's symlinks point wherever its author liked.
public enum FileTree {
    /// `remove` for the fuzz target (a separate build that cannot see package symbols).
    public static func removeForFuzzing(_ parent: Int32, _ name: String) throws(ImageError) { try remove(parent, Array(name.utf8)) }

    /// Removes `name` under `parent` and everything below it, never following a symlink.
    package static func remove(_ parent: Int32, _ name: [UInt8]) throws(ImageError) {
        let fd = name.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
        if fd >= 0 {
            guard let directory = fdopendir(fd) else { close(fd); throw ImageError(SystemError("fdopendir", String(decoding: name, as: UTF8.self))) }
            var children: [[UInt8]] = []
            while let item = readdir(directory) {
                let child = withUnsafeBytes(of: item.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                if child == [46] || child == [46, 46] { continue }
                children.append(child)
            }
            let inner = dirfd(directory)
            for child in children {
                var info = stat()
                guard child.withCString({ fstatat(inner, $0, &info, AT_SYMLINK_NOFOLLOW) }) == 0 else { continue }
                if info.st_mode & S_IFMT == S_IFDIR {
                    do throws(ImageError) { try remove(inner, child) } catch { closedir(directory); throw error }
                } else if child.withCString({ unlinkat(inner, $0, 0) }) != 0 {
                    let error = SystemError("unlink", String(decoding: child, as: UTF8.self))
                    closedir(directory)
                    throw ImageError(error)
                }
            }
            closedir(directory)
        }
        guard name.withCString({ unlinkat(parent, $0, AT_REMOVEDIR) }) == 0 else { throw ImageError(SystemError("rmdir", String(decoding: name, as: UTF8.self))) }
    }
}

extension Array where Element == UInt8 {
    /// The bytes as a NUL-terminated C string (a path component from a tar is not always UTF-8).
    package func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        (self + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }
}
