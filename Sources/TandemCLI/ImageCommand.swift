import ArgumentParser

/// `tandem image`: the one guest image every backend runs.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Build the guest image (tandem-init, busybox, workloads) that every backend runs.",
        subcommands: [ImageBuildCommand.self]
    )
}
