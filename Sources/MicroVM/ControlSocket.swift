import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The microVM's control socket (`tandem vm run --api-sock PATH`), in the spirit of Firecracker's
/// API socket: a client connects, writes one JSON object on one line, reads one JSON object back,
/// and the connection ends (docs/snapshots.md). Requests:
///
///     {"action":"describe"}                 -> {"state":"running"|"paused", "ready":..., "guest":..., ...}
///     {"action":"pause"}                    -> {"state":"paused", "pause_ms":...}
///     {"action":"resume"}                   -> {"state":"running"}
///     {"action":"snapshot","dir":"/abs"}    -> {"directory":..., "memory_bytes":..., ...}   (paused only)
///
/// A failure answers {"error":"..."}. Whoever can connect controls the VM: the socket file is
/// made with the VMM's umask, and root's VMM should be given a path only root can reach.
public enum ControlProtocol {
    /// The longest request line taken (a snapshot path is the longest field).
    public static let maximumRequestBytes = 64 << 10
    /// How long a client may take to send its request, and the longest answer wait of `request`.
    static let requestTimeoutMilliseconds: Int32 = 2000
    /// How long the vCPUs get to park on `pause` before the pause is withdrawn.
    static let pauseGraceNanoseconds: UInt64 = 2_000_000_000

    /// Sends `request` to the VM at `socket` and returns its answer; an answer holding "error" is
    /// returned too (the caller says it). Errors name the socket and the failing call.
    public static func request(socket: String, _ request: JSON, timeoutMilliseconds: Int32 = 30_000) throws(SystemError) -> JSON {
        let raw = clinux_unix_connect(socket)
        guard raw >= 0 else {
            throw SystemError("connect", "\(socket) (is a microVM running with --api-sock \(socket)?)", errno: -raw)
        }
        let connection = FileDescriptor(adopting: raw, label: socket)
        try send(request.serialized() + "\n", on: connection, timeoutMilliseconds: timeoutMilliseconds)
        let answer = try receiveLine(from: connection, timeoutMilliseconds: timeoutMilliseconds, limit: maximumRequestBytes)
        do { return try JSON.parse(answer) } catch { throw SystemError("read", "\(socket): the answer is not JSON (\(error))", errno: EPROTO) }
    }

    /// Writes `text` on a non-blocking socket, waiting up to the timeout for room.
    static func send(_ text: String, on connection: FileDescriptor, timeoutMilliseconds: Int32) throws(SystemError) {
        let bytes = Array(text.utf8)
        var sent = 0
        var fds = [pollfd(fd: connection.rawValue, events: Int16(POLLOUT), revents: 0)]
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(connection.rawValue, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if count > 0 { sent += count; continue }
            guard count < 0, errno == EAGAIN || errno == EINTR else { throw SystemError("send", connection.label) }
            guard poll(&fds, 1, timeoutMilliseconds) > 0 else { throw SystemError("send", "\(connection.label): no room within \(timeoutMilliseconds) ms", errno: ETIMEDOUT) }
        }
    }

    /// Reads up to a newline or the end, at most `limit` bytes, from a non-blocking socket.
    static func receiveLine(from connection: FileDescriptor, timeoutMilliseconds: Int32, limit: Int) throws(SystemError) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [pollfd(fd: connection.rawValue, events: Int16(POLLIN), revents: 0)]
        let deadline = Clock.monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        while !bytes.contains(UInt8(ascii: "\n")) {
            let count = read(connection.rawValue, &buffer, buffer.count)
            if count == 0 { break }
            if count > 0 {
                bytes += buffer[0..<count]
                guard bytes.count <= limit else { throw SystemError("read", "\(connection.label): more than \(limit) bytes without a newline", errno: EMSGSIZE) }
                continue
            }
            guard errno == EAGAIN || errno == EINTR else { throw SystemError("read", connection.label) }
            let now = Clock.monotonicNanoseconds()
            guard now < deadline, poll(&fds, 1, Int32((deadline - now) / 1_000_000) + 1) >= 0 else {
                throw SystemError("read", "\(connection.label): nothing within \(timeoutMilliseconds) ms", errno: ETIMEDOUT)
            }
        }
        let line = bytes.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false).first ?? []
        return String(decoding: line, as: UTF8.self)
    }
}

extension Machine {
    /// Answers one control connection (on the run's helper thread). A client that sends nothing,
    /// too much, or no JSON gets an error answer or is dropped; the VM carries on either way.
    func serveControlConnection(_ connection: FileDescriptor) {
        let answer: JSON
        do {
            let line = try ControlProtocol.receiveLine(from: connection, timeoutMilliseconds: ControlProtocol.requestTimeoutMilliseconds,
                                                       limit: ControlProtocol.maximumRequestBytes)
            do { answer = handleControl(try JSON.parse(line)) } catch { answer = .object([("error", .string("the request is not JSON: \(error)"))]) }
        } catch {
            answer = .object([("error", .string(error.description))])
        }
        try? ControlProtocol.send(answer.serialized() + "\n", on: connection, timeoutMilliseconds: ControlProtocol.requestTimeoutMilliseconds)
    }

    /// One request's answer.
    func handleControl(_ request: JSON) -> JSON {
        guard case .string(let action)? = request["action"] else {
            return .object([("error", .string("the request needs \"action\": describe, pause, resume or snapshot"))])
        }
        switch action {
        case "describe":
            return describe()
        case "pause":
            let started = Clock.monotonicNanoseconds()
            guard stop.pause(vcpuCount: vcpus.count, grace: ControlProtocol.pauseGraceNanoseconds) else {
                return .object([("error", .string(stop.isStopping ? "the VM is stopping" : "the vCPUs did not pause within 2 s; the VM runs on"))])
            }
            return .object([("state", .string("paused")), ("pause_ms", .double(Double(Clock.monotonicNanoseconds() - started) / 1e6))])
        case "resume":
            guard stop.isPaused(vcpuCount: vcpus.count) else { return .object([("error", .string("the VM is not paused"))]) }
            stop.resume()
            return .object([("state", .string("running"))])
        case "snapshot":
            guard case .string(let directory)? = request["dir"], directory.hasPrefix("/") else {
                return .object([("error", .string("snapshot needs \"dir\": an absolute path (the VMM's working directory is not the client's)"))])
            }
            do { return try writeSnapshot(to: directory).json } catch { return .object([("error", .string(error.description))]) }
        default:
            return .object([("error", .string("unknown action \(action): describe, pause, resume or snapshot"))])
        }
    }

    private func describe() -> JSON {
        let state = stop.isStopping ? "stopping" : stop.isPaused(vcpuCount: vcpus.count) ? "paused" : "running"
        var guest = "linux"
        if case .flat(_, let name, _, _) = config.boot { guest = name }
        return .object([
            ("state", .string(state)), ("ready", .bool(stop.ready != nil)), ("pid", .int(Int64(getpid()))), ("guest", .string(guest)),
            ("memory_mib", .int(Int64(config.memoryMiB))), ("vcpus", .int(Int64(vcpus.count))),
            ("restored_from", restoredFrom.map { .string($0) } ?? .null),
            ("snapshot", .string("supported")),
        ])
    }
}
