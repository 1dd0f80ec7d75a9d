import ArgumentParser
import Containers

/// `tandem ctr`: Tandem's own container runtime.
struct CtrCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ctr",
        abstract: "Run the guest image as a container with Tandem's own runtime (namespaces, pivot_root, cgroups v1/v2, overlay).",
        subcommands: [CtrRunCommand.self, CtrPsCommand.self, CtrTopCommand.self, CtrExecCommand.self, CtrStopCommand.self,
                      CtrKillCommand.self, CtrRmCommand.self, CtrPauseCommand.self, CtrResumeCommand.self, CtrLogsCommand.self,
                      CtrInspectCommand.self]
    )
}

/// The state directory option every ctr command shares.
struct StateRootOption: ParsableArguments {
    @Option(name: .customLong("state-root"), help: ArgumentHelp("Where container state lives.", valueName: "dir"))
    var stateRoot = ContainerSpec.defaultStateRoot

    var control: ContainerControl { ContainerControl(stateRoot: stateRoot) }
}
