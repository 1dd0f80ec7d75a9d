import ArgumentParser
import HostOS

/// `tandem vm pause SOCKET`: every vCPU of a running microVM stops where it is.
struct VMPauseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pause", abstract: "Pause a microVM (every vCPU leaves the guest and waits) through its control socket.")
    @OptionGroup var control: ControlSocketArgument

    func run() throws {
        print(try control.send(.object([("action", .string("pause"))])).serialized())
    }
}
