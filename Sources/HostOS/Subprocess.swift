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
        let (pid, reader) = try spawnPiped(path, arguments, mergeStandardError: mergeStandardError, defaultSignals: false)
        let bytes = (try? reader.readAll(limit: 1 << 24)) ?? []
        return Result(status: try wait(pid, path), output: String(decoding: bytes, as: UTF8.self))
    }

    /// posix_spawn with stdin from /dev/null and stdout (and stderr, when merged) on a pipe whose
    /// read end is returned. `defaultSignals`: the child starts with no signal blocked.
    public static func spawnPiped(_ path: String, _ arguments: [String], mergeStandardError: Bool,
                           defaultSignals: Bool) throws(SystemError) -> (pid: pid_t, reader: FileDescriptor) {
        var pipeEnds: [Int32] = [0, 0]
        guard clinux_pipe_cloexec(&pipeEnds) == 0 else { throw SystemError("pipe2", path) }
        let reader = FileDescriptor(adopting: pipeEnds[0], label: "pipe from \(path)")
        let writer = FileDescriptor(adopting: pipeEnds[1], label: "pipe to \(path)")

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writer.rawValue, 1)
        if mergeStandardError { posix_spawn_file_actions_adddup2(&actions, writer.rawValue, 2) }
        return (try spawn(path, arguments, actions: &actions, defaultSignals: defaultSignals), reader)
    }

    /// posix_spawn with `actions` (nil: the caller's stdio); `defaultSignals`: no signal blocked in the child.
    static func spawn(_ path: String, _ arguments: [String], actions: UnsafeMutablePointer<posix_spawn_file_actions_t>?,
                      defaultSignals: Bool) throws(SystemError) -> pid_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        if defaultSignals {
            var empty = sigset_t()
            sigemptyset(&empty)
            posix_spawnattr_setsigmask(&attributes, &empty)
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawnError = posix_spawn(&pid, path, actions, &attributes, argv, environ)
        guard spawnError == 0 else { throw SystemError("posix_spawn", path, errno: spawnError) }
        return pid
    }

    /// Runs `path` in the foreground with our stdin, stdout and stderr, and returns its exit
    /// status (128+N when signal N ended it). SIGTERM and SIGHUP sent to us are passed on; SIGINT
    /// is not (Ctrl-C reaches it directly, in the same foreground process group), and we wait.
    public static func foreground(_ path: String, _ arguments: [String]) throws(SystemError) -> Int32 {
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }
        let signals = try SignalFD([SIGINT, SIGTERM, SIGHUP])
        let pid = try spawn(path, arguments, actions: nil, defaultSignals: true)
        while true {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            var fds = [pollfd(fd: signals.fd.rawValue, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, 20)
            if fds[0].revents != 0, let signal = signals.next(), signal != SIGINT { kill(pid, signal) }
        }
    }

    /// waitpid, as an exit status (128+N when signal N ended it).
    static func wait(_ pid: pid_t, _ path: String) throws(SystemError) -> Int32 {
        var status: Int32 = 0
        _ = try retryingOnInterrupt("waitpid", path) { waitpid(pid, &status, 0) }
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

extension Subprocess {
    /// Runs `path` with stdin from /dev/null and stdout and stderr into the file `output`
    /// (created or truncated), and waits for it alone: unlike `run`, it does not wait for a pipe
    /// that a detached child (a container's process, a monitor) may keep open. Returns the status.
    public static func run(_ path: String, _ arguments: [String], outputFile output: String) throws(SystemError) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawnError = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawnError == 0 else { throw SystemError("posix_spawn", path, errno: spawnError) }
        return try wait(pid, path)
    }

    /// Runs a helper and returns its status, ignoring what it prints (cleanup helpers in tests).
    @discardableResult
    public static func runQuietly(_ path: String, _ arguments: [String]) -> Int32 {
        (try? run(path, arguments))?.status ?? -1
    }

    /// How a streamed child ended: its exit status (128+N when killed by signal N), and the
    /// signal (SIGINT, SIGTERM) that made us stop it, if any.
    public struct Ending: Sendable {
        public var status: Int32
        public var interruptedBy: Int32?
        /// It was stopped for printing nothing for `silenceSeconds`.
        public var silent = false
    }

    /// Runs `path` with stdout and stderr on a pipe and hands each chunk it prints to `output`.
    /// SIGINT and SIGTERM sent to us are caught for the duration (so the caller can clean up
    /// afterwards) and passed on to the child as SIGTERM; the child itself starts with them
    /// unblocked. `timeoutSeconds` (0 = none) also ends the child with SIGTERM, then SIGKILL; so
    /// does `silenceSeconds` (0 = none) of the child printing nothing (`Ending.silent`).
    public static func stream(_ path: String, _ arguments: [String], timeoutSeconds: Double = 0, silenceSeconds: Double = 0,
                              output: ([UInt8]) -> Void) throws(SystemError) -> Ending {
        var blocked = BlockedSignals([SIGINT, SIGTERM])
        defer { blocked.restore() }
        let signals = try SignalFD([SIGINT, SIGTERM])
        let (pid, reader) = try spawnPiped(path, arguments, mergeStandardError: true, defaultSignals: true)

        let deadline = timeoutSeconds > 0 ? Clock.deadline(after: timeoutSeconds) : UInt64.max
        var interruptedBy: Int32?
        var terminatedAt: UInt64?
        var silent = false
        var lastOutput = Clock.monotonicNanoseconds()
        let silence = silenceSeconds > 0 ? Clock.nanoseconds(seconds: silenceSeconds) : UInt64.max
        var buffer = [UInt8](repeating: 0, count: 65536)
        var open = true
        while open {
            var fds = [pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals.fd.rawValue, events: Int16(POLLIN), revents: 0)]
            let now = Clock.monotonicNanoseconds()
            // After SIGTERM, give the child 5 s before SIGKILL; keep reading what it prints meanwhile.
            if let terminatedAt, now > terminatedAt + 5_000_000_000 { kill(pid, SIGKILL) }
            if terminatedAt == nil, now >= deadline { kill(pid, SIGTERM); terminatedAt = now }
            if terminatedAt == nil, now - lastOutput >= silence { kill(pid, SIGTERM); terminatedAt = now; silent = true }
            let wait = deadline == .max && silence == .max && terminatedAt == nil ? 1000 : 200
            guard poll(&fds, 2, Int32(wait)) >= 0 || errno == EINTR else { break }
            if fds[1].revents != 0, let signal = signals.next() {
                interruptedBy = interruptedBy ?? signal
                if terminatedAt == nil { kill(pid, SIGTERM); terminatedAt = Clock.monotonicNanoseconds() }
            }
            if fds[0].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(reader.rawValue, $0.baseAddress, $0.count) }
                if count > 0 { output(Array(buffer[0..<count])); lastOutput = Clock.monotonicNanoseconds() } else if count == 0 || errno != EINTR { open = false }
            }
        }
        return Ending(status: try wait(pid, path), interruptedBy: interruptedBy, silent: silent)
    }
}
