import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// One container as the runtime remembers it: `<root>/<id>/state.json`, written whole and renamed
/// into place, so a reader never sees half a file. The monitor (the container's parent, which
/// keeps its exit status) and the commands share it.
public struct Record: Sendable {
    /// `paused` is never written: it is what the cgroup freezer reports for a running container.
    public enum Status: String, Sendable { case creating, created, running, paused, stopped }

    public var id: String
    public var bundle: String
    public var rootfs: String
    public var status: Status
    /// Host pid of the container's process and its start time (clock ticks since boot: a reused pid is not it).
    public var pid: pid_t = 0
    public var pidStart: UInt64 = 0
    /// The monitor: the container's parent, which waits for it and records how it ended.
    public var monitor: pid_t = 0
    public var monitorStart: UInt64 = 0
    public var createdNanoseconds: UInt64 = 0
    public var exitStatus: Int32?
    public var cgroups: [String] = []
    public var cgroupProcs: [String] = []
    public var annotations: [(String, String)] = [] {
        didSet { annotationsInline = annotations.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count } <= Record.inlineAnnotationBytes }
    }
    /// Tandem's own fields, beyond runc's: the program (for `ps`), when it began and ended
    /// (CLOCK_REALTIME, 0: not yet) and whether the OOM killer ended it (for `inspect`).
    public var command: [String] = []
    public var startedNanoseconds: UInt64 = 0
    public var finishedNanoseconds: UInt64 = 0
    public var oomKilled = false
    /// The front end that made it and its name there: `tandem ctr` containers have a name, and
    /// its foreground ones go with their monitor (`ephemeral`, as `docker run --rm`); the next
    /// `tandem ctr run` sweeps those whose monitor was killed. `tandem-runtime` ones have neither
    /// and stay until `delete`, as runc's do.
    public var name: String?
    public var ephemeral = false
    /// The config's poststop hooks, kept from create (as runc keeps its config): `delete` runs
    /// them without reading the bundle again, which may have changed or gone meanwhile.
    public var poststop: [OCIConfig.Hook] = []

    public var isProcessAlive: Bool {
        pid > 0 && ProcessInfoLite.startTime(pid) == pidStart
    }
    public var isMonitorAlive: Bool {
        monitor > 0 && ProcessInfoLite.startTime(monitor) == monitorStart
    }

    /// The status a command acts on: a container whose process is gone is stopped, whatever was
    /// last written (its monitor may have been killed before it could say so).
    public var currentStatus: Status {
        switch status {
        case .created, .running, .paused:
            !isProcessAlive ? .stopped : status != .created && CgroupFreezer.isFrozen(cgroups) == true ? .paused : status
        case .creating: isMonitorAlive || monitor == 0 ? .creating : .stopped
        case .stopped: .stopped
        }
    }

    package func json() -> JSON {
        var members: [(String, JSON)] = [
            ("id", .string(id)), ("bundle", .string(bundle)), ("rootfs", .string(rootfs)), ("status", .string(status.rawValue)),
            ("pid", .int(Int64(pid))), ("pidStart", .uint(pidStart)), ("monitor", .int(Int64(monitor))),
            ("monitorStart", .uint(monitorStart)), ("created", .uint(createdNanoseconds)),
            ("cgroups", .array(cgroups.map(JSON.string))), ("cgroupProcs", .array(cgroupProcs.map(JSON.string))),
        ]
        if let exitStatus { members.append(("exitStatus", .int(Int64(exitStatus)))) }
        if !command.isEmpty { members.append(("command", .array(command.map(JSON.string)))) }
        if startedNanoseconds != 0 { members.append(("started", .uint(startedNanoseconds))) }
        if finishedNanoseconds != 0 { members.append(("finished", .uint(finishedNanoseconds))) }
        if oomKilled { members.append(("oomKilled", .bool(true))) }
        if let name { members.append(("name", .string(name))) }
        if ephemeral { members.append(("ephemeral", .bool(true))) }
        if !poststop.isEmpty {
            members.append(("poststop", .array(poststop.map { hook in
                var fields: [(String, JSON)] = [("path", .string(hook.path)), ("args", .array(hook.args.map(JSON.string))),
                                                ("env", .array(hook.env.map(JSON.string)))]
                if let timeout = hook.timeout { fields.append(("timeout", .int(Int64(timeout)))) }
                return .object(fields)
            })))
        }
        if !annotations.isEmpty && annotationsInline { members.append(("annotations", .object(annotations.map { ($0.0, .string($0.1)) }))) }
        return .object(members)
    }

    package init(id: String, bundle: String, rootfs: String, status: Status) {
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.status = status
    }

    package init?(_ json: JSON) {
        guard case .string(let id)? = json["id"], case .string(let bundle)? = json["bundle"], case .string(let rootfs)? = json["rootfs"],
              case .string(let statusName)? = json["status"], let status = Status(rawValue: statusName) else { return nil }
        self.init(id: id, bundle: bundle, rootfs: rootfs, status: status)
        func number(_ key: String) -> Int64 {
            switch json[key] {
            case .int(let value)?: value
            case .uint(let value)?: Int64(clamping: value)
            default: 0
            }
        }
        pid = pid_t(number("pid"))
        pidStart = UInt64(number("pidStart"))
        monitor = pid_t(number("monitor"))
        monitorStart = UInt64(number("monitorStart"))
        createdNanoseconds = UInt64(number("created"))
        if json["exitStatus"] != nil { exitStatus = Int32(number("exitStatus")) }
        func strings(_ key: String) -> [String] {
            guard case .array(let items)? = json[key] else { return [] }
            return items.compactMap { if case .string(let text) = $0 { text } else { nil } }
        }
        cgroups = strings("cgroups")
        cgroupProcs = strings("cgroupProcs")
        command = strings("command")
        startedNanoseconds = UInt64(number("started"))
        finishedNanoseconds = UInt64(number("finished"))
        if case .bool(true)? = json["oomKilled"] { oomKilled = true }
        if case .string(let text)? = json["name"] { name = text }
        if case .bool(true)? = json["ephemeral"] { ephemeral = true }
        if case .array(let hooks)? = json["poststop"] {
            poststop = hooks.compactMap { hook in
                guard case .string(let path)? = hook["path"] else { return nil }
                func list(_ key: String) -> [String] {
                    guard case .array(let items)? = hook[key] else { return [] }
                    return items.compactMap { if case .string(let text) = $0 { text } else { nil } }
                }
                var timeout: Int?
                if case .int(let value)? = hook["timeout"] { timeout = Int(value) }
                return OCIConfig.Hook(path: path, args: list("args"), env: list("env"), timeout: timeout)
            }
        }
        if case .object(let pairs)? = json["annotations"] {
            annotations = pairs.compactMap { if case .string(let value) = $0.1 { ($0.0, value) } else { nil } }
        }
    }

    /// Annotations up to this many bytes are kept in state.json (one file fewer to write and
    /// remove per container); more go to their own file, written once.
    static let inlineAnnotationBytes = 4096
    private(set) var annotationsInline = true

    /// Where larger annotations are kept: written once at create, beside state.json, which is
    /// rewritten at every step and read by every command (a config's annotations can be
    /// megabytes; runc keeps them in its state too, Tandem only where `state` needs them).
    package var annotationsFile: String?

    /// Host pids of every process in the container's cgroup.
    /// The container's processes: its cgroups' (or, without one — rootless, none delegated —
    /// its first process and that one's descendants).
    public func processes() -> [pid_t] {
        guard cgroupProcs.isEmpty else {
            return Array(Set(cgroupProcs.flatMap { (Files.readText($0) ?? "").split(separator: "\n").compactMap { pid_t($0) } })).sorted()
        }
        guard pid > 0, isProcessAlive else { return [] }
        var found: [pid_t] = [pid], next = 0
        while next < found.count, found.count < 65536 {
            let parent = found[next]
            next += 1
            for task in Files.list("/proc/\(parent)/task") {
                for child in (Files.readText("/proc/\(parent)/task/\(task)/children") ?? "").split(separator: " ").compactMap({ pid_t($0) }) where !found.contains(child) {
                    found.append(child)
                }
            }
        }
        return found.sorted()
    }

    /// The state the OCI runtime spec defines (runtime.md "State"), with runc's extra fields
    /// (rootfs, created, owner) and Tandem's: the exit status once stopped. `status` and `pid`
    /// say what a hook is told while the container is being made (instead of what it looks like).
    public func ociState(status given: Status? = nil, pid givenPid: pid_t? = nil) -> JSON {
        let current = given ?? currentStatus
        var members: [(String, JSON)] = [
            ("ociVersion", .string(RuntimeInfo.ociVersion)), ("id", .string(id)),
            ("pid", .int(Int64(givenPid ?? (current == .stopped ? 0 : pid)))), ("status", .string(current.rawValue)),
            ("bundle", .string(bundle)), ("rootfs", .string(rootfs)),
            ("created", .string(UTCTime.format(nanoseconds: createdNanoseconds, fraction: true))), ("owner", .string("")),
        ]
        var annotations = self.annotations
        if annotations.isEmpty, let annotationsFile, let text = Files.readText(annotationsFile), case .object(let pairs)? = try? JSON.parse(text) {
            annotations = pairs.compactMap { if case .string(let value) = $0.1 { ($0.0, value) } else { nil } }
        }
        if !annotations.isEmpty { members.append(("annotations", .object(annotations.map { ($0.0, .string($0.1)) }))) }
        if current == .stopped, let exitStatus { members.append(("exitStatus", .int(Int64(exitStatus)))) }
        return .object(members)
    }
}

/// The runtime's state directory (`--root`, /run/tandem-runtime by default): one directory per container.
public struct RecordStore: Sendable {
    public let root: String

    public init(root: String) { self.root = root }

    public func directory(_ id: String) -> String { "\(root)/\(id)" }

    /// Container ids as runc accepts them: letters, digits, `_ + - .`, not starting with a dot.
    public static func validate(id: String) throws(OCIError) {
        guard !id.isEmpty, id.utf8.count <= 1024, !id.hasPrefix("."),
              id.unicodeScalars.allSatisfy({ ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "_+-.".unicodeScalars.contains($0) }) else {
            throw OCIError("invalid container id \"\(id)\": use letters, digits, _ + - . (not starting with .)")
        }
    }

    /// Makes the container's directory; fails if the id is taken. 0711 (files inside are 0600): a
    /// user-namespaced container's root, a host uid of its own, must traverse to its layers.
    public func create(_ id: String) throws(OCIError) -> String {
        do { try Files.makeDirectories(root, mode: 0o711) } catch { throw OCIError("--root \(root): \(error.description)") }
        let path = directory(id)
        // Between mkdir and the lock, a sweep by another run can take the new directory for a
        // killed creator's (no state, nobody holds it): it removes it under its exclusive lock,
        // and then we make it again.
        for _ in 0..<10 {
            guard mkdir(path, 0o711) == 0 else {
                if errno == EEXIST { throw OCIError("container \"\(id)\" already exists") }
                throw OCIError(SystemError("mkdir", path).description)
            }
            if holdUntilExit(id) { return path }
        }
        throw OCIError("mkdir \(path): removed again and again by other runs' sweeps")
    }

    /// A shared lock on the container's directory, held until this process exits (the
    /// descriptor is close-on-exec and never closed): while its creator or monitor lives, a
    /// sweep cannot take the directory for a killed one's, even before its first state is written.
    /// False when the directory is gone once the lock is ours (a sweep removed it meanwhile).
    @discardableResult
    package func holdUntilExit(_ id: String) -> Bool {
        let fd = open(directory(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        flock(fd, LOCK_SH)
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_nlink > 0 else {
            close(fd)
            return false
        }
        return true
    }

    /// The directory of a container whose creator is gone (nobody holds it: `holdUntilExit`),
    /// locked exclusively: the descriptor, to close once the caller has removed the directory,
    /// or nil while someone holds it. Held through the removal, so a creator that made the
    /// directory a moment ago and locks it now waits, then finds it gone and makes it again.
    package func takeAbandoned(_ id: String) -> Int32? {
        let fd = open(directory(id), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Where `tandem ctr` names are claimed: `.names/NAME` is a symlink to the container's id
    /// (a dot name is never an id).
    var names: String { root + "/.names" }

    /// Claims `name` for `id`: a symlink made atomically, so of two containers started with one
    /// name at once only one gets it (Docker refuses a name in use until that container is removed).
    package func claim(name: String, for id: String) throws(OCIError) {
        do { try Files.makeDirectories(names, mode: 0o700) } catch { throw OCIError(error.description) }
        let link = names + "/" + name
        guard symlink(id, link) != 0 else { return }
        guard errno == EEXIST else { throw OCIError(SystemError("symlink", link).description) }
        let owner = Files.readLink(link)
        // A claim whose container is gone (a killed tandem's) is taken over.
        guard let owner, Files.kind(directory(owner)) == .missing, unlink(link) == 0, symlink(id, link) == 0 else {
            throw OCIError("the name \(name) is in use by container \(owner.map { String($0.prefix(12)) } ?? "?"): remove it first (tandem ctr rm \(name))")
        }
    }

    /// A container by full id, name, or unique id prefix (`tandem ctr`'s references); errors say which.
    package func find(_ reference: String) throws(OCIError) -> Record {
        if !reference.isEmpty, !reference.hasPrefix("."), !reference.contains("/") {
            if let id = Files.readLink(names + "/" + reference), let record = try? load(id) { return record }
            if Files.kind(directory(reference) + "/state.json") != .missing, let record = try? load(reference) { return record }
        }
        let matches = ids().filter { $0.hasPrefix(reference) }
        guard !reference.isEmpty, matches.count <= 1 else { throw OCIError("container id prefix \(reference) is ambiguous") }
        guard let match = matches.first, let record = try? load(match) else { throw OCIError("no such container: \(reference)") }
        return record
    }

    public func load(_ id: String) throws(OCIError) -> Record {
        try RecordStore.validate(id: id)
        let path = directory(id) + "/state.json"
        guard let text = Files.readText(path) else {
            if Files.kind(directory(id)) == .directory {
                // A create in progress (or one killed before its first write).
                return Record(id: id, bundle: "", rootfs: "", status: .creating)
            }
            throw OCIError("container \"\(id)\" does not exist")
        }
        guard let json = try? JSON.parse(text), var record = Record(json) else { throw OCIError("\(path): damaged state file") }
        record.annotationsFile = directory(id) + "/annotations.json"
        return record
    }

    /// Writes a container's annotations once (see `Record.annotationsFile`), unless they are few
    /// enough to travel in state.json itself.
    public func saveAnnotations(_ record: Record) throws(OCIError) {
        guard !record.annotations.isEmpty, !record.annotationsInline else { return }
        let json = JSON.object(record.annotations.map { ($0.0, .string($0.1)) })
        do { try Files.write(directory(record.id) + "/annotations.json", Array(json.serialized().utf8), mode: 0o600) } catch {
            throw OCIError(error.description)
        }
    }

    /// As `load`, but a container whose process just ended while its monitor is still recording
    /// that (exit status, cgroup removal) is read once the monitor is done — at most `seconds`.
    public func loadSettled(_ id: String, seconds: Int = 2) throws(OCIError) -> Record {
        let record = try load(id)
        guard record.status != .stopped, record.currentStatus == .stopped, record.isMonitorAlive else { return record }
        Lifecycle.waitForExit(record.monitor, seconds: seconds)
        return try load(id)
    }

    public func save(_ record: Record) throws(OCIError) {
        let path = directory(record.id) + "/state.json"
        let temporary = path + ".new"
        do {
            try Files.write(temporary, Array(record.json().serialized().utf8), mode: 0o600)
        } catch { throw OCIError(error.description) }
        guard rename(temporary, path) == 0 else { throw OCIError(SystemError("rename", temporary).description) }
    }

    /// Removes a container's directory tree (state, bundle, layers, log) and its name claim.
    /// Nothing is mounted there (an overlay root is mounted inside the container's own mount
    /// namespace). The files the engine writes go one call each; whatever else is there (the
    /// upper layer's contents) goes through the general tree removal.
    public func remove(_ id: String, name: String? = nil, unnamed: Bool = false) {
        let directory = directory(id)
        for file in ["state.json", "config.json", "annotations.json", "log", "ctl.sock", "state.json.new"] { unlink(directory + "/" + file) }
        for empty in ["root", "upper", "work/work", "work"] { rmdir(directory + "/" + empty) }
        if rmdir(directory) != 0 && errno != ENOENT { Files.removeTree(directory) }
        // The name: the caller knows it (a lookup of the one link), or every claim is looked at.
        if let name {
            if Files.readLink(names + "/" + name) == id { unlink(names + "/" + name) }
        } else if !unnamed {
            for claimed in Files.list(names) where Files.readLink(names + "/" + claimed) == id { unlink(names + "/" + claimed) }
        }
    }

    /// Every container that has a state (a directory without one is a create in progress, or
    /// not a container: runc's list skips those too), settled as `loadSettled` reads it.
    public func records(settled: Bool = false) -> [Record] {
        ids().compactMap { id in
            guard Files.kind(directory(id) + "/state.json") == .regular else { return nil }
            return try? settled ? loadSettled(id) : load(id)
        }
    }

    public func ids() -> [String] {
        guard let handle = opendir(root) else { return [] }
        defer { closedir(handle) }
        var result: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            // Dot names are the store's own (.names, .images), never container ids.
            if !name.hasPrefix("."), Files.kind("\(root)/\(name)") == .directory { result.append(name) }
        }
        return result.sorted()
    }
}

/// What `features` and `state` say about this runtime.
public enum RuntimeInfo {
    public static let ociVersion = Defaults.ociVersion
    public static let version = "0.1.0"
    public static let defaultRoot = "/run/tandem-runtime"
    /// Where the state goes by default: /run/tandem-runtime for root; for another user (rootless)
    /// $XDG_RUNTIME_DIR/tandem-runtime, as runc uses $XDG_RUNTIME_DIR/runc. Nil when that is unset.
    public static func defaultRoot(uid: uid_t) -> String? {
        if uid == 0 { return defaultRoot }
        guard let runtimeDirectory = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), runtimeDirectory.hasPrefix("/") else { return nil }
        return runtimeDirectory + "/tandem-runtime"
    }
}
