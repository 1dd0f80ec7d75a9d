import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A Unix stream socket listening at a path the VMM owns for a run (a vsock's host side, a
/// microVM's control socket). A socket file left there by a process that was killed (nobody
/// listens) is replaced; a path that is not a socket, or one something listens on, is an error
/// naming it, and nothing is made. `close()` (or release) removes the file — only the one this
/// listener made, not one another run put there since.
public final class UnixListener: @unchecked Sendable {
    public let path: String
    /// Non-blocking and close-on-exec.
    public let fd: FileDescriptor
    private let inode: ino_t
    private let lock = Lock()
    private var closed = false

    /// `what` names the socket in errors ("vsock", "control socket").
    public init(path: String, what: String, backlog: Int32 = 128) throws(SystemError) {
        self.path = path
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFSOCK else { throw SystemError("bind", "\(path): exists and is not a socket", errno: EEXIST) }
            let probe = clinux_unix_connect(path)
            if probe >= 0 {
                Glibc.close(probe)
                throw SystemError("bind", "\(path): a program listens there (another VM's \(what)?)", errno: EADDRINUSE)
            }
            guard probe == -ECONNREFUSED else { throw SystemError("connect", "\(path): to see whether it is stale", errno: -probe) }
            guard unlink(path) == 0 else { throw SystemError("unlink", "\(path): a stale \(what) socket") }
        }
        let raw = clinux_unix_listen(path, backlog)
        guard raw >= 0 else { throw SystemError("bind", path, errno: -raw) }
        fd = FileDescriptor(adopting: raw, label: path)
        // The file's inode (fstat on the socket would give the socket's own).
        guard lstat(path, &info) == 0 else {
            let error = SystemError("lstat", path)
            unlink(path)
            throw error
        }
        inode = info.st_ino
    }

    /// The next waiting connection (non-blocking, close-on-exec), or nil when none waits.
    public func accept() -> FileDescriptor? {
        let raw = clinux_unix_accept(fd.rawValue)
        return raw >= 0 ? FileDescriptor(adopting: raw, label: "\(path) connection") : nil
    }

    /// Removes the socket file if it is still the one this listener made. Idempotent.
    public func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            var info = stat()
            if lstat(path, &info) == 0, info.st_ino == inode { unlink(path) }
        }
    }

    deinit { close() }
}
