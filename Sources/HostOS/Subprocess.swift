import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Runs a helper program and captures its standard output (posix_spawn: no Swift code runs in the
/// child, which matters because Swift is not safe between fork and exec).
public enum Subprocess {
    public struct Result: Sendable {
        public var status: Int32
        public var output: String
    }

    /// Runs `path` with `arguments`, stdin from /dev/null, stderr merged into stdout when asked.
    public static func run(_ path: String, _ arguments: [String], mergeStandardError: Bool = true) throws(SystemError) -> Result {
        var pipeEnds: [Int32] = [0, 0]
        guard clinux_pipe_cloexec(&pipeEnds) == 0 else { throw SystemError("pipe2", path) }
        let reader = FileDescriptor(adopting: pipeEnds[0], label: "pipe from \(path)")
        var writer: FileDescriptor? = FileDescriptor(adopting: pipeEnds[1], label: "pipe to \(path)")

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writer!.rawValue, 1)
        if mergeStandardError { posix_spawn_file_actions_adddup2(&actions, writer!.rawValue, 2) }

        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawnError = posix_spawn(&pid, path, &actions, nil, argv, environ)
        writer = nil
        guard spawnError == 0 else { throw SystemError("posix_spawn", path, errno: spawnError) }

        let bytes = (try? reader.readAll(limit: 1 << 24)) ?? []
        var status: Int32 = 0
        _ = try retryingOnInterrupt("waitpid", path) { waitpid(pid, &status, 0) }
        let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: exitStatus, output: String(decoding: bytes, as: UTF8.self))
    }
}
