import ArgumentParser
import HostOS
import MicroVM

/// What the control-socket commands share: the socket argument and one request's round trip.
struct ControlSocketArgument: ParsableArguments {
    @Argument(help: ArgumentHelp("The VM's control socket (`tandem vm run --api-sock PATH`).", valueName: "socket"))
    var socket: String

    /// Sends `request`; an error answer or a failed connection ends the command with Tandem's
    /// error status and the answer's message.
    func send(_ request: JSON) throws -> JSON {
        let answer: JSON
        do { answer = try ControlProtocol.request(socket: socket, request) } catch { throw fail("\(error)") }
        if case .string(let message)? = answer["error"] { throw fail("\(socket): \(message)") }
        return answer
    }
}
