import HostOS
import MicroVM
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm pause|resume|describe SOCKET` and `tandem vm snapshot SOCKET --out DIR
/// [--leave-paused]`: a request to a microVM's control socket (docs/snapshots.md). Shared by the
/// lean launcher (which parses the well-formed lines itself: the nested lab's L1 has no
/// tandem-cli) and the ArgumentParser commands, which own help and usage errors.
public enum VMControl {
    public struct Request: Equatable, Sendable {
        public var action: String
        public var socket: String
        public var out: String?
        public var leavePaused = false
        public init(action: String, socket: String, out: String? = nil, leavePaused: Bool = false) {
            self.action = action
            self.socket = socket
            self.out = out
            self.leavePaused = leavePaused
        }
    }

    public static let actions = ["pause", "resume", "describe", "snapshot"]

    /// The launcher's parser: `ACTION SOCKET` (snapshot: `--out DIR` or `--out=DIR`, and
    /// `--leave-paused`, in any order after the socket); nil for anything else.
    public static func parse(_ action: String, _ arguments: ArraySlice<String>) -> Request? {
        guard actions.contains(action), let socket = arguments.first, !socket.hasPrefix("-") else { return nil }
        var request = Request(action: action, socket: socket)
        var rest = arguments.dropFirst()
        while let argument = rest.first {
            rest = rest.dropFirst()
            guard action == "snapshot" else { return nil }
            if argument == "--leave-paused", !request.leavePaused {
                request.leavePaused = true
            } else if argument == "--out", request.out == nil, let value = rest.first, !value.hasPrefix("-") {
                request.out = value
                rest = rest.dropFirst()
            } else if argument.hasPrefix("--out="), request.out == nil, argument.count > 6 {
                request.out = String(argument.dropFirst(6))
            } else {
                return nil
            }
        }
        if action == "snapshot", request.out == nil { return nil }
        return request
    }

    /// Does what `request` asks and prints the VM's answer (JSON) on stdout; an error answer or a
    /// failed connection is one line on stderr. Returns the exit status. A snapshot of a running
    /// VM pauses it first and resumes it after (unless `leavePaused`), also when the snapshot fails.
    public static func run(_ request: Request) -> Int32 {
        do {
            switch request.action {
            case "snapshot":
                guard let out = request.out else { return VMRunner.fail("vm snapshot: --out DIR is required") }
                let wasRunning = try send(request.socket, "describe")["state"] == .string("running")
                if wasRunning { _ = try send(request.socket, "pause") }
                let answer: JSON
                do {
                    answer = try send(request.socket, "snapshot", [("dir", .string(Files.absolute(out)))])
                } catch {
                    if wasRunning { _ = try? send(request.socket, "resume") }
                    throw error
                }
                if wasRunning, !request.leavePaused { _ = try send(request.socket, "resume") }
                StandardOutput.write(answer.serialized(indent: 2) + "\n")
            case "describe":
                StandardOutput.write(try send(request.socket, "describe").serialized(indent: 2) + "\n")
            default:
                StandardOutput.write(try send(request.socket, request.action).serialized() + "\n")
            }
            return 0
        } catch {
            return VMRunner.fail((error as? Failure)?.text ?? "\(error)")
        }
    }

    struct Failure: Error { let text: String }

    /// One request; an answer that holds "error" is a failure naming the socket.
    static func send(_ socket: String, _ action: String, _ members: [(String, JSON)] = []) throws(Failure) -> JSON {
        let answer: JSON
        do { answer = try ControlProtocol.request(socket: socket, .object([("action", .string(action))] + members)) } catch {
            throw Failure(text: error.description)
        }
        if case .string(let message)? = answer["error"] { throw Failure(text: "\(socket): \(message)") }
        return answer
    }
}
