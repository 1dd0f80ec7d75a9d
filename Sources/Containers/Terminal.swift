import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `process.terminal`: a pty whose slave becomes the container's stdio and controlling terminal,
/// and whose master goes to the caller over `--console-socket` (runc's protocol: one message,
/// the pty's path as payload, the master as SCM_RIGHTS).
package enum Terminal {
    package static func openPair(size: (height: UInt16, width: UInt16)?) throws(OCIError) -> (master: Int32, slave: Int32, path: String) {
        var master: Int32 = -1, slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        let result = clinux_open_pty(&master, &slave, &name, name.count, size?.height ?? 0, size?.width ?? 0)
        guard result == 0 else { throw OCIError(SystemError("posix_openpt", "/dev/ptmx", errno: -result).description) }
        return (master, slave, String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    package static func sendMaster(_ master: Int32, to socketPath: String) throws(OCIError) {
        let sock = try UnixSocket.connect(socketPath, label: "--console-socket")
        defer { close(sock) }
        let result = clinux_send_fd(sock, master, "/dev/ptmx")
        guard result == 0 else { throw OCIError("--console-socket \(socketPath): " + SystemError("sendmsg", socketPath, errno: -result).description) }
    }
}

/// Unix stream sockets by path. A path longer than sun_path (108 bytes) is reached through its
/// directory: the socket is bound or connected by its name relative to a chdir.
package enum UnixSocket {
    package static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        let useRelative = path.utf8.count >= 108
        var saved: Int32 = -1
        var name = path
        if useRelative {
            saved = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            chdir(Files.directory(of: path))
            name = String(path.split(separator: "/").last ?? "")
        }
        defer { if saved >= 0 { fchdir(saved); close(saved) } }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            let bytes = Array(name.utf8.prefix(buffer.count - 1))
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    package static func connect(_ path: String, label: String) throws(OCIError) -> Int32 {
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard sock >= 0 else { throw OCIError("\(label) \(path): " + SystemError("socket", "AF_UNIX").description) }
        let result = withAddress(path) { Glibc.connect(sock, $0, $1) }
        guard result == 0 else {
            let error = SystemError("connect", path)
            close(sock)
            throw OCIError("\(label) \(path): \(error.description)")
        }
        return sock
    }

    package static func listen(_ path: String) throws(OCIError) -> Int32 {
        let sock = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard sock >= 0 else { throw OCIError(SystemError("socket", "AF_UNIX").description) }
        unlink(path)
        let result = withAddress(path) { bind(sock, $0, $1) }
        guard result == 0, Glibc.listen(sock, 8) == 0 else {
            let error = SystemError("bind", path)
            close(sock)
            throw OCIError(error.description)
        }
        return sock
    }
}
