#if canImport(Glibc)
import Glibc
#endif

/// Small file-system queries, without Foundation (the launch path stays lean).
public enum Files {
    public enum Kind: Equatable, Sendable { case missing, regular, directory, other }

    public static func kind(_ path: String) -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else { return .missing }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .regular
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// The names in a directory, without "." and ".." (none when it cannot be read).
    public static func list(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    /// The target of the symlink at `path`, or nil when it is none.
    public static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, Int(PATH_MAX))
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Size in bytes of a regular file, or nil.
    public static func size(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    /// Reads a whole file; a missing or unreadable file throws with the path.
    public static func read(_ path: String, limit: Int = 1 << 30) throws(SystemError) -> [UInt8] {
        try FileDescriptor.open(path, O_RDONLY).readAll(limit: limit)
    }

    /// A small text file (a /proc or /sys entry), or nil when it cannot be read.
    /// Read with a small buffer and no fstat (open, read until 0, close): on the launch path a
    /// container's start reads a dozen such files, and each system call counts.
    public static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 { if errno == EINTR { continue }; return nil }
            if count == 0 { return String(decoding: result, as: UTF8.self) }
            result.append(contentsOf: buffer[0..<count])
            if result.count > 1 << 24 { return nil }
        }
    }

    /// Writes (creating or truncating) a file.
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(SystemError) {
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: mode)
        let result: Result<Void, SystemError> = bytes.withUnsafeBytes { buffer in Result { () throws(SystemError) in try fd.writeAll(buffer) } }
        try result.get()
    }

    /// The first executable named `name` on $PATH (or `name` itself when it contains a slash).
    public static func which(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if kind(candidate) == .regular, access(candidate, X_OK) == 0 { return candidate }
        }
        for directory in ["/usr/sbin", "/sbin"] where !path.contains(directory) {
            let candidate = "\(directory)/\(name)"
            if kind(candidate) == .regular, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// This process's executable, resolved (/proc/self/exe).
    /// `path` made absolute against the working directory, symlinks resolved where it exists
    /// (runc's bundle and pid-file paths are relative to where it was started).
    public static func absolute(_ path: String) -> String {
        if let resolved = realpath(path, nil) {
            defer { free(resolved) }
            return String(cString: resolved)
        }
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let directory = String(cString: buffer)
        return (directory == "/" ? "" : directory) + "/" + (path.hasPrefix("./") ? String(path.dropFirst(2)) : path)
    }

    public static func currentExecutable() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The directory part of a path ("/a/b/c" -> "/a/b").
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}

/// Writes all of `text` to `fd`, retrying short writes and EINTR; gives up silently on other errors
/// (a closed stdout must not take the VMM down).
func writeText(_ text: String, to fd: Int32) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { if errno == EINTR { continue } else { return } }
            offset += written
        }
    }
}

/// Standard error, unbuffered: diagnostics must appear even when the process dies next.
public enum StandardError {
    public static func write(_ text: String) { writeText(text, to: 2) }
    public static func line(_ text: String) { write(text + "\n") }
}

/// Standard output, for whole lines of a command's own report (the guest console has its own sink).
public enum StandardOutput {
    public static func write(_ text: String) { writeText(text, to: 1) }
}
