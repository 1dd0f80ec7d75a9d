import ArgumentParser

/// `tandem lab`: ways to try what this host cannot do directly.
struct LabCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Labs for hosts that lack something (hardware virtualisation).",
        subcommands: [LabNestedCommand.self]
    )
}
