import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Files of an image as its container will see them — the overlay of its layers — looked up on
/// the host before anything is mounted: the entrypoint's path, /etc/passwd and /etc/group for
/// the image's User. Overlay's rules: the topmost layer with a name wins; a whiteout (0/0
/// character device) hides it below; an opaque directory hides everything below it. Symlinks are
/// followed inside the image (absolute ones from its root, at most 40), never out of it, and
/// every component is opened with O_NOFOLLOW: a layer's symlink never reaches the host.
public struct LayeredRoot {
    /// Layer directories, top first (overlay's lowerdir order).
    public let layers: [String]

    public init(layers: [String]) { self.layers = layers }

    public enum Found: Equatable { case file(layer: Int, path: String, mode: mode_t), directory, missing }

    /// What `path` is in the merged view (symlinks followed).
    public func lookup(_ path: String) -> Found {
        var hops = 0
        return resolve(components(path), hops: &hops)
    }

    /// A regular file's contents (up to `limit` bytes) in the merged view.
    public func contents(_ path: String, limit: Int = 1 << 20) -> [UInt8]? {
        guard case .file(let layer, let inner, let mode) = lookup(path), mode & S_IFMT == S_IFREG else { return nil }
        let fd = openInLayer(layer, inner, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: limit)
        let got = read(fd, &bytes, limit)
        return got >= 0 ? Array(bytes[0..<got]) : nil
    }

    /// An executable's path inside the image: as given when it has a slash, else the first
    /// match on `searchPath` (colon-separated), as execvp would find it in the container.
    public func executable(_ program: String, searchPath: String) -> String? {
        let candidates = program.contains("/") ? [program.hasPrefix("/") ? program : "/" + program]
            : searchPath.split(separator: ":").map { "\($0)/\(program)" }
        for candidate in candidates {
            if case .file(_, _, let mode) = lookup(candidate), mode & S_IFMT == S_IFREG, mode & 0o111 != 0 { return candidate }
        }
        return nil
    }

    private func components(_ path: String) -> [String] {
        path.split(separator: "/").map(String.init).filter { $0 != "." }
    }

    /// Walks `parts` from the image's root, one component at a time across the layers.
    private func resolve(_ parts: [String], hops: inout Int) -> Found {
        var resolved: [String] = []
        var pending = parts[...]
        while let part = pending.popFirst() {
            if part == ".." { if !resolved.isEmpty { resolved.removeLast() }; continue }
            let candidate = resolved + [part]
            switch entry(candidate) {
            case .none: return .missing
            case .some(.directory): resolved = candidate
            case .some(.symlink(let target)):
                hops += 1
                guard hops <= 40 else { return .missing }
                let targetParts = components(target)
                pending = (target.hasPrefix("/") ? targetParts : resolved + targetParts)[...] + pending
                resolved = []
            case .some(.other(let layer, let mode)):
                if pending.isEmpty { return .file(layer: layer, path: "/" + candidate.joined(separator: "/"), mode: mode) }
                return .missing  // a file in the middle of a path
            }
        }
        return .directory
    }

    private enum Entry { case directory, symlink(String), other(layer: Int, mode: mode_t) }

    /// `path` (already free of symlinks up to its last component) in the topmost layer that has
    /// it, unless a whiteout or an opaque directory above hides it.
    private func entry(_ path: [String]) -> Entry? {
        for (index, _) in layers.enumerated() {
            // A directory above that is opaque hides this path in the layers below it.
            var info = stat()
            let fd = openParentInLayer(index, path)
            guard fd >= 0 else {
                if isHiddenBelow(index, path) { return nil }
                continue
            }
            let found = fstatat(fd, path.last!, &info, AT_SYMLINK_NOFOLLOW) == 0
            var target: String?
            if found && info.st_mode & S_IFMT == S_IFLNK {
                var buffer = [CChar](repeating: 0, count: 4097)
                let length = readlinkat(fd, path.last!, &buffer, 4096)
                if length >= 0 { target = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
            }
            close(fd)
            if found {
                let type = info.st_mode & S_IFMT
                if type == S_IFCHR && info.st_rdev == 0 { return nil }  // a whiteout
                if type == S_IFDIR { return .directory }
                if type == S_IFLNK { return target.map { .symlink($0) } }
                return .other(layer: index, mode: info.st_mode)
            }
            if isHiddenBelow(index, path) { return nil }
        }
        return nil
    }

    /// Whether layer `index` hides `path` from the layers below it: an ancestor directory there
    /// is opaque, or an ancestor is whited out or is not a directory.
    private func isHiddenBelow(_ index: Int, _ path: [String]) -> Bool {
        var fd = open(layers[index], O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        for part in path.dropLast() {
            var info = stat()
            guard fstatat(fd, part, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return false }
            if info.st_mode & S_IFMT != S_IFDIR { return true }  // a whiteout or a file replaces the directory below
            let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { return false }
            close(fd)
            fd = next
            if clinux_overlay_opaque(fd) == Int32(UInt8(ascii: "y")) { return true }
        }
        return false
    }

    private func openParentInLayer(_ index: Int, _ path: [String]) -> Int32 {
        var fd = open(layers[index], O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        for part in path.dropLast() where fd >= 0 {
            let next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let code = errno
            close(fd)
            fd = next
            errno = code
        }
        return fd
    }

    private func openInLayer(_ index: Int, _ path: String, _ flags: Int32) -> Int32 {
        let parts = components(path)
        let parent = openParentInLayer(index, parts)
        guard parent >= 0, let name = parts.last else { return -1 }
        defer { close(parent) }
        return openat(parent, name, flags | O_NOFOLLOW | O_CLOEXEC)
    }
}
