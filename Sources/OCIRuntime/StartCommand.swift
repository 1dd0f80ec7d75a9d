#if canImport(Glibc)
import Containers
import Glibc
#endif

/// `start ID`: asks the container's monitor to let its process exec (startContainer hooks run
/// first, poststart hooks before this returns).
enum StartCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [], command: "start")
        let id = try arguments.id("start")
        try arguments.expectingNoMore(than: 1, "start")
        let record = try options.store.load(id)
        switch record.currentStatus {
        case .created: break
        case .stopped: throw OCIError("cannot start a container that has stopped: \(id)")
        case .running, .paused: throw OCIError("cannot start an already running container: \(id)")
        case .creating: throw OCIError("cannot start container \(id): it is still being created")
        }
        let sock = try UnixSocket.connect(options.store.directory(id) + "/" + MonitorCommand.socketName, label: "start \(id): the monitor's socket")
        defer { close(sock) }
        _ = "start\n".utf8CString.withUnsafeBufferPointer { write(sock, $0.baseAddress, $0.count - 1) }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(sock, &buffer, buffer.count)
            if count > 0 { reply += buffer[0..<count]; if reply.contains(UInt8(ascii: "\n")) { break }; continue }
            if count < 0 && errno == EINTR { continue }
            break
        }
        let text = String(decoding: reply, as: UTF8.self).trimmingTrailingNewlines()
        if text == "ok" { return 0 }
        if text.hasPrefix("error ") { throw OCIError(String(text.dropFirst(6))) }
        throw OCIError("start \(id): the container's monitor ended without an answer")
    }
}
