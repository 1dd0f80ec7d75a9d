import ArgumentParser
import TandemLaunch

/// `tandem`: the root command. One subcommand per file.
public struct Tandem: ParsableCommand {
    public static let version = Launcher.version

    public static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Run one workload as a KVM microVM, a libvirt guest and a container, and measure them side by side.",
        version: version,
        subcommands: [HostCommand.self, RunCommand.self, VMCommand.self, CtrCommand.self, BenchCommand.self, ReportCommand.self, ImageCommand.self, LabCommand.self]
    )

    public init() {}
}
