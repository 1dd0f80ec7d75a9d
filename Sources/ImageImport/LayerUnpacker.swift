import CLinux
import HostOS
import Images
#if canImport(Glibc)
import Glibc
#endif

/// Unpacks one layer's tar into an empty directory as an overlay lower layer, the way Docker's
/// overlay2 and containerd's overlayfs snapshotter keep them: each layer on its own, OCI
/// whiteouts turned into overlay's (`.wh.NAME` → a 0/0 character device NAME; `.wh..wh..opq` →
/// the directory's `trusted.overlay.opaque` = `y`), hard links within the layer, modes, owners,
/// times and extended attributes as the tar says.
///
/// The tar is hostile (umoci's oci/layer/tar_extract.go and crun's safe path handling were read
/// for shape): every path is resolved from the layer's root one component at a time with
/// O_NOFOLLOW, so nothing is ever written through a symlink; an absolute path, a `..`, a write
/// through a symlink, a hard link to anything outside the layer, a device node when not root, and
/// xattrs in overlay's own namespace are refused with the entry named; a layer that would fill
/// the file system (a decompression bomb) is stopped by a `SpaceGuard`.
public struct LayerUnpacker {
    public struct Stats: Sendable {
        public var entries = 0
        public var files = 0
        public var directories = 0
        public var bytes: Int64 = 0
        /// Device nodes under /dev left out of a rootless store (see `place`).
        public var skippedDeviceNodes = 0
    }

    /// Unpacks `tar` into `directory` (which must exist and be empty). `asRoot`: owners and device
    /// nodes as the tar says (root only); otherwise owners are left as the caller's.
    ///
    /// In a user namespace (a rootless store: `unshare --user --map-root-user --map-auto`, as
    /// podman's rootless storage works) uid 0 owns within the user's /etc/subuid range and may
    /// make whiteouts (0/0 devices, Linux 5.8+) but no other device node, and no trusted.* xattr:
    /// opaque directories get user.overlay.opaque only, other device nodes are refused as for a
    /// user, and a layer's own trusted.* xattrs are left out.
    public static func unpack(_ tar: TarReader, into directory: String, asRoot: Bool = geteuid() == 0,
                              inUserNamespace: Bool = !ProcessInfoLite.inInitialUserNamespace) throws(ImageError) -> Stats {
        let root = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard root >= 0 else { throw ImageError(SystemError("open", directory)) }
        defer { close(root) }
        var unpacker = LayerUnpacker(root: root, tar: tar, asRoot: asRoot, inUserNamespace: inUserNamespace,
                                     space: try SpaceGuard(directory: root, name: directory))
        defer { unpacker.closeCached() }
        try unpacker.run()
        return unpacker.stats
    }

    let root: Int32
    let tar: TarReader
    let asRoot: Bool
    let inUserNamespace: Bool
    var space: SpaceGuard
    var stats = Stats()
    /// The last parent directory opened (entries come grouped by directory).
    var cached: (path: [[UInt8]], fd: Int32)?
    /// Directories' modes and times, applied at the end (a read-only directory made early would
    /// refuse the files that follow it; a time set early would be changed by them).
    var directories: [(path: [[UInt8]], entry: TarEntry)] = []
    let buffer = ByteBuffer(1 << 17)

    static let whiteoutPrefix = Array(".wh.".utf8)
    static let opaqueMarker = Array(".wh..wh..opq".utf8)
    static let metadataPrefix = Array(".wh..wh.".utf8)

    mutating func run() throws(ImageError) {
        while let entry = try tar.next() {
            stats.entries += 1
            do throws(ImageError) {
                try space.created()
                try place(entry)
            } catch { throw ImageError("\(tar.name): \(entry.name): \(error.description)") }
        }
        closeCached()
        // Deepest first: a directory's mode never stops the walk to one below it.
        for (path, entry) in directories.sorted(by: { $0.path.count > $1.path.count }) {
            do throws(ImageError) { try finishDirectory(path, entry) } catch { throw ImageError("\(tar.name): \(entry.name): \(error.description)") }
        }
    }

    // MARK: - One entry

    mutating func place(_ entry: TarEntry) throws(ImageError) {
        let path = try Self.components(entry.path, what: "path")
        guard let name = path.last else {
            // "./": the layer's root itself (its mode and owner, for the merged root).
            if entry.kind == .directory { directories.append(([], entry)) }
            return
        }
        let parentPath = Array(path.dropLast())
        if name.starts(with: Self.whiteoutPrefix) {
            let parent = try openParent(parentPath)
            if name == Self.opaqueMarker {
                // Both namespaces: overlay mounted by root reads trusted.*; mounted in a user
                // namespace (`--userns`, its layers idmapped) it reads user.* (userxattr).
                if !inUserNamespace { try setXattr(parent, nil, "trusted.overlay.opaque", Array("y".utf8)) }
                try setXattr(parent, nil, "user.overlay.opaque", Array("y".utf8))
            } else if !name.starts(with: Self.metadataPrefix) {
                // (Other .wh..wh. names are AUFS bookkeeping: skipped, as Docker does.)
                let hidden = Array(name.dropFirst(Self.whiteoutPrefix.count))
                guard !hidden.isEmpty, hidden != [46], hidden != [46, 46] else { throw ImageError("a whiteout of nothing") }
                guard asRoot else { throw ImageError("a whiteout: overlay's whiteouts are device nodes, which only root can make (rootless import: not supported yet)") }
                try removeExisting(parent, hidden, keepingDirectory: false)
                try Self.call("mknod (whiteout)", hidden) { hidden.withCString { mknodat(parent, $0, S_IFCHR | 0o000, 0) } }
            }
            return
        }
        let parent = try openParent(parentPath)
        try removeExisting(parent, name, keepingDirectory: entry.kind == .directory)
        switch entry.kind {
        case .directory:
            var info = stat()
            if name.withCString({ fstatat(parent, $0, &info, AT_SYMLINK_NOFOLLOW) }) != 0 {
                try Self.call("mkdir", name) { name.withCString { mkdirat(parent, $0, 0o700) } }
            }
            try own(parent, name, entry)
            try xattrs(parent, name, entry)
            directories.append((path, entry))
            stats.directories += 1
        case .regular:
            let fd = name.withCString { openat(parent, $0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
            guard fd >= 0 else { throw ImageError(SystemError("open", String(decoding: name, as: UTF8.self))) }
            defer { close(fd) }
            var written: Int64 = 0
            while true {
                let got = try tar.readContent(into: buffer.all)
                if got == 0 { break }
                try space.write(fd, buffer[0..<got], what: String(decoding: name, as: UTF8.self))
                written += Int64(got)
            }
            stats.bytes += written
            stats.files += 1
            if asRoot { try Self.call("fchown", name) { fchown(fd, uid_t(entry.uid), gid_t(entry.gid)) } }
            // After chown (which clears set-id bits).
            try Self.call("fchmod", name) { fchmod(fd, mode_t(entry.mode)) }
            try xattrs(parent, name, entry)
            try times(parent, name, entry)
        case .symlink:
            try Self.call("symlink", name) { entry.linkTarget.withCString { target in name.withCString { symlinkat(target, parent, $0) } } }
            try own(parent, name, entry)
            try xattrs(parent, name, entry)
            try times(parent, name, entry)
            stats.files += 1
        case .hardLink:
            let targetPath = try Self.components(entry.linkTarget, what: "hard link target")
            guard let targetName = targetPath.last else { throw ImageError("a hard link to the layer's root") }
            let targetParent: Int32
            do throws(ImageError) { targetParent = try walk(Array(targetPath.dropLast()), create: false) } catch {
                throw ImageError("a hard link to \(String(decoding: entry.linkTarget, as: UTF8.self)), which is not in this layer (\(error.description))")
            }
            defer { close(targetParent) }
            var info = stat()
            guard targetName.withCString({ fstatat(targetParent, $0, &info, AT_SYMLINK_NOFOLLOW) }) == 0 else {
                throw ImageError("a hard link to \(String(decoding: entry.linkTarget, as: UTF8.self)), which is not in this layer")
            }
            guard info.st_mode & S_IFMT != S_IFDIR else { throw ImageError("a hard link to a directory") }
            try Self.call("link", name) { targetName.withCString { t in name.withCString { linkat(targetParent, t, parent, $0, 0) } } }
            stats.files += 1
        case .characterDevice, .blockDevice, .fifo:
            let type: mode_t = entry.kind == .fifo ? S_IFIFO : entry.kind == .characterDevice ? S_IFCHR : S_IFBLK
            if entry.kind != .fifo && (!asRoot || inUserNamespace) {
                // Under /dev, which every runtime mounts its own /dev over (Docker, podman, runc,
                // Tandem), a node is never seen: left out, counted (distribution trees made by
                // debootstrap or mmdebstrap carry /dev/null, /dev/console, ...). Anywhere else it
                // is refused, as the store cannot hold it and the image would run without it.
                if parentPath.first == Array("dev".utf8) {
                    stats.skippedDeviceNodes += 1
                    return
                }
                throw ImageError("a device node (\(entry.deviceMajor):\(entry.deviceMinor)): device nodes are refused when not root (rootless), except under /dev")
            }
            let device = clinux_makedev(entry.deviceMajor, entry.deviceMinor)
            try Self.call("mknod", name) { name.withCString { mknodat(parent, $0, type | 0o600, device) } }
            try own(parent, name, entry)
            try Self.call("chmod", name) { name.withCString { fchmodat(parent, $0, mode_t(entry.mode), 0) } }
            try xattrs(parent, name, entry)
            try times(parent, name, entry)
            stats.files += 1
        }
    }

    mutating func finishDirectory(_ path: [[UInt8]], _ entry: TarEntry) throws(ImageError) {
        let fd: Int32
        if path.isEmpty {
            fd = dup(root)
        } else {
            // A later entry may have replaced it (or a directory above it): then there is nothing to finish.
            guard let parent = try? walk(Array(path.dropLast()), create: false) else { return }
            defer { close(parent) }
            fd = path.last!.withCString { openat(parent, $0, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            if fd < 0 && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) { return }
        }
        guard fd >= 0 else { throw ImageError(SystemError("open", Self.text(path))) }
        defer { close(fd) }
        if path.isEmpty && asRoot { try Self.call("fchown", []) { fchown(fd, uid_t(entry.uid), gid_t(entry.gid)) } }
        try Self.call("fchmod", path.last ?? []) { fchmod(fd, mode_t(entry.mode)) }
        var when = [timespec(tv_sec: Int(max(0, entry.modified)), tv_nsec: 0), timespec(tv_sec: Int(max(0, entry.modified)), tv_nsec: 0)]
        try Self.call("futimens", path.last ?? []) { futimens(fd, &when) }
    }

    // MARK: - Paths

    /// The path's components: leading "./" and "/"-runs and "." dropped; absolute paths and ".."
    /// refused (a layer's paths are relative to its root, and nothing in one climbs out).
    static func components(_ path: [UInt8], what: String) throws(ImageError) -> [[UInt8]] {
        if path.first == UInt8(ascii: "/") { throw ImageError("\(what) is absolute") }
        var parts: [[UInt8]] = []
        for part in path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.elementsEqual([46]) { continue }
            if part.elementsEqual([46, 46]) { throw ImageError("\(what) has a '..' component") }
            guard part.count <= Int(NAME_MAX) else { throw ImageError("\(what) has a component longer than \(NAME_MAX) bytes") }
            parts.append(Array(part))
        }
        return parts
    }

    /// The directory at `path` inside the layer, opened CLINUX_O_PATH: each component opened with
    /// O_NOFOLLOW (a symlink is never followed), missing ones made (mode 0755, as Docker does).
    func walk(_ path: [[UInt8]], create: Bool) throws(ImageError) -> Int32 {
        var fd = openat(root, ".", CLINUX_O_PATH | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ImageError(SystemError("open", "the layer's root")) }
        for (index, component) in path.enumerated() {
            var next = component.withCString { openat(fd, $0, CLINUX_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            if next < 0 && errno == ENOENT && create {
                guard component.withCString({ mkdirat(fd, $0, 0o755) }) == 0 || errno == EEXIST else {
                    let error = SystemError("mkdir", Self.text(path[0...index]))
                    close(fd)
                    throw ImageError(error)
                }
                next = component.withCString { openat(fd, $0, CLINUX_O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) }
            }
            if next < 0 {
                let code = errno
                var info = stat()
                let isLink = component.withCString { fstatat(fd, $0, &info, AT_SYMLINK_NOFOLLOW) } == 0 && info.st_mode & S_IFMT == S_IFLNK
                close(fd)
                let where_ = Self.text(path[0...index])
                if isLink { throw ImageError("goes through \(where_), a symlink in this layer (a write through a symlink is refused)") }
                if code == ENOTDIR { throw ImageError("goes through \(where_), which is not a directory in this layer") }
                if code == ENOENT { throw ImageError("\(where_) is not in this layer") }
                throw ImageError(SystemError("open", where_, errno: code))
            }
            close(fd)
            fd = next
        }
        return fd
    }

    mutating func openParent(_ path: [[UInt8]]) throws(ImageError) -> Int32 {
        if let cached, cached.path == path { return cached.fd }
        let fd = try walk(path, create: true)
        closeCached()
        cached = (path, fd)
        return fd
    }

    mutating func closeCached() {
        if let cached { close(cached.fd) }
        cached = nil
    }

    /// What a later entry replaces (tar's rule: the last entry for a path wins); a directory
    /// stays when the new entry is a directory too (its metadata is the new one's).
    mutating func removeExisting(_ parent: Int32, _ name: [UInt8], keepingDirectory: Bool) throws(ImageError) {
        var info = stat()
        guard name.withCString({ fstatat(parent, $0, &info, AT_SYMLINK_NOFOLLOW) }) == 0 else { return }
        let isDirectory = info.st_mode & S_IFMT == S_IFDIR
        if isDirectory && keepingDirectory { return }
        if isDirectory {
            // The cached parent may lie below what goes: drop it.
            closeCached()
            try FileTree.remove(parent, name)
        } else {
            try Self.call("unlink", name) { name.withCString { unlinkat(parent, $0, 0) } }
        }
    }

    // MARK: - Metadata

    func own(_ parent: Int32, _ name: [UInt8], _ entry: TarEntry) throws(ImageError) {
        guard asRoot else { return }
        try Self.call("chown", name) { name.withCString { fchownat(parent, $0, uid_t(entry.uid), gid_t(entry.gid), AT_SYMLINK_NOFOLLOW) } }
    }

    func times(_ parent: Int32, _ name: [UInt8], _ entry: TarEntry) throws(ImageError) {
        var when = [timespec(tv_sec: Int(max(0, entry.modified)), tv_nsec: 0), timespec(tv_sec: Int(max(0, entry.modified)), tv_nsec: 0)]
        try Self.call("utimensat", name) { name.withCString { utimensat(parent, $0, &when, AT_SYMLINK_NOFOLLOW) } }
    }

    func xattrs(_ parent: Int32, _ name: [UInt8], _ entry: TarEntry) throws(ImageError) {
        for (key, value) in entry.xattrs {
            // Overlay's own attributes (opaque, redirect, metacopy, origin) would steer the
            // overlay's lookups: only the whiteout markers above may set one.
            if key.hasPrefix("trusted.overlay.") || key.hasPrefix("user.overlay.") {
                throw ImageError("the extended attribute \(key) (overlay's own namespace) is refused in a layer")
            }
            // (A rootless store cannot hold them: only host root may set trusted.* attributes.)
            if inUserNamespace && key.hasPrefix("trusted.") { continue }
            try setXattr(parent, name, key, value)
        }
    }

    /// lsetxattr on `name` in `parent`, through /proc/self/fd (the directory is the one walked
    /// to without symlinks, and lsetxattr does not follow `name`); nil: on `parent` itself.
    func setXattr(_ parent: Int32, _ name: [UInt8]?, _ key: String, _ value: [UInt8]) throws(ImageError) {
        let result: Int32
        if let name {
            let path = Array("/proc/self/fd/\(parent)/".utf8) + name
            result = path.withCString { p in value.withUnsafeBytes { clinux_lsetxattr(p, key, $0.baseAddress, value.count) } }
        } else {
            let fd = openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { throw ImageError(SystemError("open", "its directory")) }
            defer { close(fd) }
            result = value.withUnsafeBytes { clinux_fsetxattr(fd, key, $0.baseAddress, value.count) }
        }
        guard result == 0 else {
            throw ImageError(SystemError("setxattr \(key)", name.map { Self.text([$0]) } ?? "its directory"))
        }
    }

    static func call(_ what: String, _ name: [UInt8], _ body: () -> Int32) throws(ImageError) {
        guard body() == 0 else { throw ImageError(SystemError(what, text([name]))) }
    }

    static func text<C: Collection>(_ path: C) -> String where C.Element == [UInt8] {
        path.map { String(decoding: $0, as: UTF8.self) }.joined(separator: "/")
    }
}
