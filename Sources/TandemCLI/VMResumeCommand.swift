import ArgumentParser
import TandemLaunch

/// `tandem vm resume SOCKET`: a paused microVM runs on.
struct VMResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused microVM through its control socket.")
    @Argument(help: ArgumentHelp("The VM's control socket (`tandem vm run --api-sock PATH`).", valueName: "socket"))
    var socket: String

    func run() throws {
        throw ExitCode(VMControl.run(VMControl.Request(action: "resume", socket: socket)))
    }
}
