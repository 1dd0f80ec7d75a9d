import ArgumentParser
import TandemLaunch

/// `tandem vm pause SOCKET`: every vCPU of a running microVM stops where it is.
struct VMPauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause a microVM (every vCPU leaves the guest and waits) through its control socket.")
    @Argument(help: ArgumentHelp("The VM's control socket (`tandem vm run --api-sock PATH`).", valueName: "socket"))
    var socket: String

    func run() throws {
        throw ExitCode(VMControl.run(VMControl.Request(action: "pause", socket: socket)))
    }
}
