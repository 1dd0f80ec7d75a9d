import ArgumentParser
import Containers
import HostOS

/// `tandem ctr top ID`: the processes inside, with host and container PIDs (the seed's `docker top`).
struct CtrTopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "top", abstract: "Show a running container's processes: host PID, PID inside, user, command.")
    @OptionGroup var state: StateRootOption
    @Argument(help: "Container id (or a unique prefix) or name.")
    var container: String

    func run() throws {
        let (info, processes): (Record, [ContainerControl.Process])
        do { (info, processes) = try state.control.top(container) } catch { throw fail(error.description) }
        var rows = [["HOST PID", "PID INSIDE", "UID", "COMMAND"]]
        for process in processes {
            rows.append([String(process.hostPID), process.containerPID.map(String.init) ?? "?",
                         process.uid.map(String.init) ?? "?", process.command])
        }
        StandardOutput.write("container \(info.displayName) (\(info.id.prefix(12)))\n" + Table.render(rows))
    }
}
