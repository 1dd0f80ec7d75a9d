import ArgumentParser
import HostOS

/// `tandem vm describe SOCKET`: what the microVM is and whether it runs.
struct VMDescribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Describe a running microVM (state, guest, RAM, vCPUs, snapshot support) as JSON.")
    @OptionGroup var control: ControlSocketArgument

    func run() throws {
        print(try control.send(.object([("action", .string("describe"))])).serialized(indent: 2))
    }
}
