import ArgumentParser

/// `tandem vm`: virtual machines.
struct VMCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm",
        abstract: "Run virtual machines with Tandem's own KVM VMM.",
        subcommands: [VMRunCommand.self, VMRestoreCommand.self, VMPauseCommand.self, VMResumeCommand.self, VMSnapshotCommand.self, VMDescribeCommand.self]
    )
}
