import ArgumentParser
import TandemLaunch

/// `tandem vm describe SOCKET`: what the microVM is and whether it runs.
struct VMDescribeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Describe a running microVM (state, ready, guest, RAM, vCPUs, snapshot support) as JSON.")
    @Argument(help: ArgumentHelp("The VM's control socket (`tandem vm run --api-sock PATH`).", valueName: "socket"))
    var socket: String

    func run() throws {
        throw ExitCode(VMControl.run(VMControl.Request(action: "describe", socket: socket)))
    }
}
