import ArgumentParser
import HostOS

/// `tandem vm resume SOCKET`: a paused microVM runs on.
struct VMResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Resume a paused microVM through its control socket.")
    @OptionGroup var control: ControlSocketArgument

    func run() throws {
        print(try control.send(.object([("action", .string("resume"))])).serialized())
    }
}
