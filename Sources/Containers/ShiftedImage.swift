import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The lower layer of a user-namespaced container: the image with every owner shifted into the
/// namespace's range (host uid and gid base + id), made once per image and range and kept under
/// the state root, as Docker's userns-remap keeps remapped layers. Rootless, the range is the
/// user's own uid and gid (count 1): a copy the user owns, which it may make itself. Without it the image's files
/// belong to host root, which the namespace does not map: root inside sees them owned by nobody,
/// and overlayfs cannot copy one up to write it (EOVERFLOW, "Value too large for defined data type").
enum ShiftedImage {
    /// The shifted copy of `image` for ids from `base` (made if missing or if the image changed).
    static func path(for image: String, base: UInt32, gidBase: UInt32? = nil, count: UInt32, stateRoot: String) throws(ContainerError) -> String {
        let gidBase = gidBase ?? base
        let fingerprint = Self.fingerprint(image)
        var key = fnvOffset
        fnv(image, &key)
        let directory = "\(stateRoot)/.images/\(String(key, radix: 16))-\(base)" + (gidBase == base ? "" : "-\(gidBase)")
        if Files.readText(directory + ".stamp") == fingerprint, Files.kind(directory) == .directory { return directory }
        do { try Files.makeDirectories(stateRoot + "/.images", mode: 0o711) } catch { throw ContainerError(error.description) }
        // Made beside and renamed into place: two containers starting at once never see half a copy.
        let building = "\(directory).building-\(getpid())"
        Files.removeTree(building)
        do {
            try copy(image, to: building, base: base, gidBase: gidBase, count: count)
        } catch {
            Files.removeTree(building)
            throw ContainerError("\(count == 1 ? "rootless" : "--userns"): cannot make the image's copy for ids from \(base): \(error)")
        }
        Files.removeTree(directory)
        guard rename(building, directory) == 0 else {
            let error = SystemError("rename", building)
            Files.removeTree(building)
            throw ContainerError(error.description)
        }
        try? Files.write(directory + ".stamp", Array(fingerprint.utf8), mode: 0o600)
        return directory
    }

    /// What changes when the image is rebuilt: every entry's path, size, mode, owner, inode, mtime and ctime.
    static func fingerprint(_ root: String) -> String {
        var hash = fnvOffset
        func walk(_ path: String) {
            for name in Files.list(path).sorted() {
                var info = stat()
                guard lstat(path + "/" + name, &info) == 0 else { continue }
                // ctime and the inode as well as mtime: a reproducible build may pin mtimes, but a
                // file written or replaced always gets a new ctime (or a new inode).
                fnv("\(path)/\(name) \(info.st_size) \(info.st_mode) \(info.st_uid) \(info.st_gid) \(info.st_ino) "
                    + "\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec) \(info.st_ctim.tv_sec).\(info.st_ctim.tv_nsec)\n", &hash)
                if info.st_mode & S_IFMT == S_IFDIR { walk(path + "/" + name) }
            }
        }
        walk(root)
        return String(hash, radix: 16)
    }

    /// Copies the tree at `source` to `target` (which must not exist), each owner id shifted by
    /// `base`; ids at or beyond `count` (unmappable) become the range's last. Symlinks are copied
    /// as links, never followed; device nodes and sockets are left out (a container's /dev is its own).
    static func copy(_ source: String, to target: String, base: UInt32, gidBase: UInt32, count: UInt32) throws(SystemError) {
        var info = stat()
        guard lstat(source, &info) == 0 else { throw SystemError("lstat", source) }
        func shifted(_ id: UInt32, _ base: UInt32) -> UInt32 { base + min(id, count - 1) }
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            guard mkdir(target, 0o700) == 0 else { throw SystemError("mkdir", target) }
            for name in Files.list(source) { try copy(source + "/" + name, to: target + "/" + name, base: base, gidBase: gidBase, count: count) }
        case S_IFREG:
            let bytes = try Files.read(source)
            try Files.write(target, bytes, mode: 0o600)
        case S_IFLNK:
            guard let link = Files.readLink(source), symlink(link, target) == 0 else { throw SystemError("symlink", target) }
        default:
            return
        }
        guard lchown(target, shifted(info.st_uid, base), shifted(info.st_gid, gidBase)) == 0 else { throw SystemError("lchown", target) }
        // After chown, which clears set-id bits: the image's own mode, those bits included.
        if info.st_mode & S_IFMT != S_IFLNK, chmod(target, info.st_mode & 0o7777) != 0 { throw SystemError("chmod", target) }
    }
}

/// FNV-1a, 64 bits: a stable digest of names (Swift's hashValue is seeded per process).
let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
func fnv(_ text: String, _ hash: inout UInt64) {
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
}
