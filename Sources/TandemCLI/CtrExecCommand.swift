import ArgumentParser
import Containers

/// `tandem ctr exec ID -- CMD`: a new process in a running container's namespaces and cgroups.
struct CtrExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "exec", abstract: "Run a command inside a running container (setns into its namespaces).")
    @OptionGroup var state: StateRootOption
    @Option(name: [.customShort("e"), .long], help: ArgumentHelp("Environment variable.", valueName: "name=value"))
    var env: [String] = []
    @Argument(help: "Container id (or a unique prefix) or name.")
    var container: String
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func run() throws {
        guard !command.isEmpty else { throw fail("no command: tandem ctr exec \(container) -- CMD ARGS") }
        var environment = ["PATH=\(ContainerSpec.defaultPath)", "HOME=/root"]
        for variable in env {
            guard variable.contains("="), !variable.hasPrefix("=") else { throw fail("--env \(variable): must be NAME=VALUE") }
            environment.append(variable)
        }
        let status: Int32
        do { status = try state.control.exec(container, command: command, environment: environment) } catch { throw fail(error.description) }
        if status != 0 { throw ExitCode(status) }
    }
}
