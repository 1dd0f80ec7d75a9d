import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// What any later `tandem ctr` command needs to find a container: one directory per container
/// under `<stateRoot>/containers/<id>/` holding `state` (key=value lines), the overlay's
/// `upper/` and `work/`, the mount point `root/`, and `log` for a detached container's output.
public struct ContainerState: Sendable, Equatable {
    public enum Status: String, Sendable { case creating, running, stopped }

    public var id: String
    public var name: String
    public var status: Status
    /// Host pid of the container's PID 1 (0 before it exists).
    public var pid: pid_t = 0
    /// Its start time in clock ticks since boot (/proc/PID/stat field 22): a reused pid is not it.
    public var pidStart: UInt64 = 0
    /// The tandem process that waits for the container and cleans up after it.
    public var monitor: pid_t = 0
    public var monitorStart: UInt64 = 0
    public var command: [String] = []
    public var image = ""
    public var hostname = ""
    /// Every cgroup directory the container's manager made (for cleanup if its monitor died).
    public var cgroups: [String] = []
    /// cgroup.procs files a process joins (for exec).
    public var cgroupProcs: [String] = []
    public var detached = false
    public var createdNanoseconds: UInt64 = 0
    /// When its program began (exec) and ended, CLOCK_REALTIME (0: not yet).
    public var startedNanoseconds: UInt64 = 0
    public var finishedNanoseconds: UInt64 = 0
    public var exitStatus: Int32?
    public var oomKilled = false
    /// What it was started with, for `inspect`: limits ("memory=33554432"…), volumes
    /// ("HOST:CONTAINER[:ro]"), and the namespaces' options.
    public var limits: [String] = []
    public var volumes: [String] = []
    public var userNamespace = false
    public var readOnly = false
    public var network = ""

    public init(id: String, name: String, status: Status) {
        self.id = id
        self.name = name
        self.status = status
    }

    /// key=value lines; list values are separated by a unit separator (0x1f), which no argument contains.
    func serialized() -> String {
        let separator = "\u{1f}"
        var lines = [
            "id=\(id)", "name=\(name)", "status=\(status.rawValue)", "pid=\(pid)", "pid_start=\(pidStart)",
            "monitor=\(monitor)", "monitor_start=\(monitorStart)", "command=\(command.joined(separator: separator))",
            "image=\(image)", "hostname=\(hostname)", "cgroups=\(cgroups.joined(separator: separator))",
            "cgroup_procs=\(cgroupProcs.joined(separator: separator))", "detached=\(detached ? 1 : 0)",
            "created_ns=\(createdNanoseconds)", "oom_killed=\(oomKilled ? 1 : 0)",
            "started_ns=\(startedNanoseconds)", "finished_ns=\(finishedNanoseconds)", "limits=\(limits.joined(separator: separator))",
            "volumes=\(volumes.joined(separator: separator))", "userns=\(userNamespace ? 1 : 0)", "read_only=\(readOnly ? 1 : 0)",
            "network=\(network)",
        ]
        if let exitStatus { lines.append("exit_status=\(exitStatus)") }
        return lines.map { $0.replacingNewlines() }.joined(separator: "\n") + "\n"
    }

    static func parse(_ text: String) -> ContainerState? {
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        func list(_ key: String) -> [String] {
            (values[key] ?? "").split(separator: "\u{1f}", omittingEmptySubsequences: true).map(String.init)
        }
        guard let id = values["id"], let status = values["status"].flatMap(Status.init(rawValue:)) else { return nil }
        var state = ContainerState(id: id, name: values["name"] ?? id, status: status)
        state.pid = pid_t(values["pid"] ?? "") ?? 0
        state.pidStart = UInt64(values["pid_start"] ?? "") ?? 0
        state.monitor = pid_t(values["monitor"] ?? "") ?? 0
        state.monitorStart = UInt64(values["monitor_start"] ?? "") ?? 0
        state.command = list("command")
        state.image = values["image"] ?? ""
        state.hostname = values["hostname"] ?? ""
        state.cgroups = list("cgroups")
        state.cgroupProcs = list("cgroup_procs")
        state.detached = values["detached"] == "1"
        state.createdNanoseconds = UInt64(values["created_ns"] ?? "") ?? 0
        state.exitStatus = values["exit_status"].flatMap { Int32($0) }
        state.oomKilled = values["oom_killed"] == "1"
        state.startedNanoseconds = UInt64(values["started_ns"] ?? "") ?? 0
        state.finishedNanoseconds = UInt64(values["finished_ns"] ?? "") ?? 0
        state.limits = list("limits")
        state.volumes = list("volumes")
        state.userNamespace = values["userns"] == "1"
        state.readOnly = values["read_only"] == "1"
        state.network = values["network"] ?? ""
        return state
    }

    /// The container's PID 1 is still the process recorded.
    public var isRunning: Bool { pid > 0 && ProcessInfoLite.startTime(pid) == pidStart }
    /// Its monitor (the tandem that started it) is still alive.
    public var monitorAlive: Bool { monitor > 0 && ProcessInfoLite.startTime(monitor) == monitorStart }
}

/// The directory of all containers, and the lookups commands need.
public struct ContainerStore: Sendable {
    public let root: String
    public init(stateRoot: String = ContainerSpec.defaultStateRoot) { root = stateRoot + "/containers" }

    public func directory(_ id: String) -> String { "\(root)/\(id)" }

    /// Where names are claimed: .names/NAME is a symlink to the container's id.
    var names: String { root + "/.names" }

    /// Creates the container's directory (and the store's parents), failing if it exists, and
    /// claims its name: a symlink made atomically, so of two containers started with one name at
    /// once only one gets it (as Docker refuses a name in use until that container is removed).
    func create(_ id: String, name: String) throws(ContainerError) -> String {
        // 0711: a user-namespaced container's root (a host uid of its own) must traverse to its layers.
        do { try Files.makeDirectories(names, mode: 0o711) } catch { throw ContainerError(error.description) }
        let link = names + "/" + name
        if symlink(id, link) != 0 {
            guard errno == EEXIST else { throw ContainerError(SystemError("symlink", link).description) }
            let owner = Files.readLink(link)
            // A claim whose container is gone (a killed tandem's) is taken over.
            guard let owner, Files.kind(directory(owner)) == .missing, unlink(link) == 0, symlink(id, link) == 0 else {
                throw ContainerError("the name \(name) is in use by container \(owner.map { String($0.prefix(12)) } ?? "?"): remove it first (tandem ctr rm \(name))")
            }
        }
        let directory = directory(id)
        guard mkdir(directory, 0o711) == 0 else {
            let error = SystemError("mkdir", directory)
            unlink(link)
            throw ContainerError(error.description)
        }
        return directory
    }

    public func save(_ state: ContainerState) throws(ContainerError) {
        let path = directory(state.id) + "/state"
        do {
            try Files.write(path + ".new", Array(state.serialized().utf8), mode: 0o600)
            guard rename(path + ".new", path) == 0 else { throw SystemError("rename", path) }
        } catch { throw ContainerError("cannot save container state: \(error)") }
    }

    public func load(_ id: String) -> ContainerState? {
        Files.readText(directory(id) + "/state").flatMap(ContainerState.parse)
    }

    public func all() -> [ContainerState] {
        entries().compactMap(\.state).sorted { $0.createdNanoseconds < $1.createdNanoseconds }
    }

    /// Every container directory: its id, its state (nil when there is none yet, or no more),
    /// and when the directory last changed — one pass over the store.
    func entries() -> [(id: String, state: ContainerState?, changedSeconds: Int)] {
        guard let handle = opendir(root) else { return [] }
        defer { closedir(handle) }
        var found: [(String, ContainerState?, Int)] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(".") { continue }
            if let state = load(name) { found.append((name, state, 0)); continue }
            var info = stat()
            guard stat(directory(name), &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            found.append((name, nil, Int(info.st_mtim.tv_sec)))
        }
        return found
    }

    /// A container by full id, unique id prefix, or name; errors say which.
    public func find(_ reference: String) throws(ContainerError) -> ContainerState {
        let states = all()
        if let exact = states.first(where: { $0.id == reference || $0.name == reference }) { return exact }
        let matches = states.filter { $0.id.hasPrefix(reference) }
        guard !reference.isEmpty, matches.count <= 1 else { throw ContainerError("container id prefix \(reference) is ambiguous") }
        guard let match = matches.first else { throw ContainerError("no such container: \(reference)") }
        return match
    }

    /// Removes a container's directory tree (state, upper and work layers, log).
    public func remove(_ id: String) {
        let directory = directory(id)
        umount2(directory + "/root", Int32(MNT_DETACH))  // only if something is still mounted there
        Files.removeTree(directory)
        for name in Files.list(names) where Files.readLink(names + "/" + name) == id { unlink(names + "/" + name) }
    }
}

extension String {
    func replacingNewlines() -> String { String(map { $0 == "\n" ? " " : $0 }) }
}
