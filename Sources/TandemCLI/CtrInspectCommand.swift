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
            let info: Record
            do { info = try state.control.find(reference) } catch { throw fail(error.description) }
            objects.append(Self.json(info))
        }
        StandardOutput.write(JSON.array(objects).serialized(indent: 2) + "\n")
    }

    static func time(_ nanoseconds: UInt64) -> JSON { nanoseconds == 0 ? .null : .string(UTCTime.format(nanoseconds: nanoseconds, fraction: true)) }

    /// A container made by `tandem-runtime` has no `tandem ctr` annotations: those fields are null.
    static func json(_ info: Record) -> JSON {
        let status = ContainerControl.status(info)
        let running = [.running, .paused].contains(info.currentStatus)
        let annotation = { (key: String) -> JSON in info.annotation(key).map(JSON.string) ?? .null }
        let flag = { (key: String) -> JSON in info.annotation(key).map { .bool($0 == "true") } ?? .null }
        let limits: [(String, JSON)] = (info.annotation(ContainerSpec.Annotation.limits) ?? "").split(separator: " ").compactMap { item in
            let pair = item.split(separator: "=", maxSplits: 1)
            return pair.count == 2 ? (String(pair[0]), .string(String(pair[1]))) : nil
        }
        let volumes = (info.annotation(ContainerSpec.Annotation.volumes) ?? "").split(separator: " ").map { JSON.string(String($0)) }
        let ports = (info.annotation(ContainerSpec.Annotation.ports) ?? "").split(separator: " ").map { JSON.string(String($0)) }
        let state: JSON = .object([
            ("status", .string(status)), ("running", .bool(running)), ("pid", running ? .int(Int64(info.pid)) : .null),
            ("exit_status", info.exitStatus.map { .int(Int64($0)) } ?? .null), ("oom_killed", .bool(info.oomKilled)),
            ("created", time(info.createdNanoseconds)), ("started", time(info.startedNanoseconds)), ("finished", time(info.finishedNanoseconds)),
        ])
        let hostname: JSON = (try? OCIConfig.load(bundle: info.bundle)).flatMap { $0.hostname }.map(JSON.string) ?? .null
        return .object([
            ("schema", .string("tandem.ctr-inspect/1")),
            ("id", .string(info.id)), ("name", .string(info.displayName)), ("state", state),
            ("command", .array(info.command.map { .string($0) })), ("image", annotation(ContainerSpec.Annotation.image)), ("hostname", hostname),
            ("detached", .bool(info.name != nil && !info.ephemeral)), ("user_namespace", flag(ContainerSpec.Annotation.userNamespace)),
            ("read_only", flag(ContainerSpec.Annotation.readOnly)), ("network", annotation(ContainerSpec.Annotation.network)),
            ("address", BridgeNetwork.address(of: info.id).map(JSON.string) ?? .null), ("ports", .array(ports)),
            ("limits", .object(limits)), ("volumes", .array(volumes)),
            ("bundle", .string(info.bundle)), ("cgroups", .array(info.cgroups.map { .string($0) })),
        ])
    }
}
