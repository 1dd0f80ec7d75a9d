import ArgumentParser
import Containers
import HostOS

/// `tandem ctr inspect ID…`: everything Tandem knows of containers, as JSON (`docker inspect`):
/// schema tandem.ctr-inspect/1, one object per container in an array.
struct CtrInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Print containers' state, times, exit status, limits and mounts as JSON (schema tandem.ctr-inspect/1).")
    @OptionGroup var state: StateRootOption
    @Argument(help: "Container ids (or unique prefixes) or names.")
    var containers: [String]

    func run() throws {
        var objects: [JSON] = []
        for reference in containers {
            let info: ContainerState
            do { info = try state.control.store.find(reference) } catch { throw fail(error.description) }
            objects.append(Self.json(info))
        }
        StandardOutput.write(JSON.array(objects).serialized(indent: 2) + "\n")
    }

    static func time(_ nanoseconds: UInt64) -> JSON { nanoseconds == 0 ? .null : .string(UTCTime.format(nanoseconds: nanoseconds, fraction: true)) }

    static func json(_ info: ContainerState) -> JSON {
        let status = ContainerControl.status(info)
        let limits: [(String, JSON)] = info.limits.compactMap { line in
            let pair = line.split(separator: "=", maxSplits: 1)
            return pair.count == 2 ? (String(pair[0]), .string(String(pair[1]))) : nil
        }
        return .object([
            ("schema", .string("tandem.ctr-inspect/1")),
            ("id", .string(info.id)), ("name", .string(info.name)),
            ("state", .object([
                ("status", .string(status)), ("running", .bool(info.status == .running && info.isRunning)),
                ("pid", info.status == .running && info.isRunning ? .int(Int64(info.pid)) : .null),
                ("exit_status", info.exitStatus.map { .int(Int64($0)) } ?? .null), ("oom_killed", .bool(info.oomKilled)),
                ("created", time(info.createdNanoseconds)), ("started", time(info.startedNanoseconds)), ("finished", time(info.finishedNanoseconds)),
            ])),
            ("command", .array(info.command.map { .string($0) })), ("image", .string(info.image)), ("hostname", .string(info.hostname)),
            ("detached", .bool(info.detached)), ("user_namespace", .bool(info.userNamespace)), ("read_only", .bool(info.readOnly)),
            ("network", .string(info.network)), ("limits", .object(limits)),
            ("volumes", .array(info.volumes.map { .string($0) })),
            ("cgroups", .array(info.cgroups.map { .string($0) })),
        ])
    }
}
