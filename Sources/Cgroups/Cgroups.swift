import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The limits `tandem ctr run`'s options ask for (nil: the kernel's default, unlimited). They are
/// written into its config.json as `linux.resources` and reach the cgroup through
/// `CgroupResources`, as every other container's; this is what its report and `inspect` show.
public struct CgroupLimits: Equatable, Sendable {
    /// Hard memory limit, bytes (`memory.max` / `memory.limit_in_bytes`).
    public var memoryBytes: UInt64?
    /// Memory plus swap, bytes, as Docker's `--memory-swap` (`nil`: kernel default; `.max`: unlimited).
    public var memoryAndSwapBytes: UInt64?
    /// CPU bandwidth: `quota` µs of CPU time per `period` µs (`cpu.max` / `cfs_quota_us`).
    public var cpuQuotaMicroseconds: Int?
    public var cpuPeriodMicroseconds = 100_000
    /// Most tasks (processes and threads) at once.
    public var pids: Int?

    public init() {}

    public var isEmpty: Bool { self == CgroupLimits() }

    /// "memory_bytes=33554432", "cpu_quota_us=50000/100000"…: the limits set, for state and `inspect`.
    public var described: [String] {
        var lines: [String] = []
        if let memoryBytes { lines.append("memory_bytes=\(memoryBytes)") }
        if let memoryAndSwapBytes { lines.append("memory_swap_bytes=" + (memoryAndSwapBytes == .max ? "unlimited" : String(memoryAndSwapBytes))) }
        if let cpuQuotaMicroseconds { lines.append("cpu_quota_us=\(cpuQuotaMicroseconds)/\(cpuPeriodMicroseconds)") }
        if let pids { lines.append("pids=\(pids)") }
        return lines
    }
}

/// What the kernel counted for a container's cgroup.
public struct CgroupStatistics: Equatable, Sendable {
    public var memoryPeakBytes: UInt64?
    public var memoryCurrentBytes: UInt64?
    public var cpuNanoseconds: UInt64?
    /// Processes the kernel's OOM killer killed inside this cgroup.
    public var oomKills = 0
    public var throttledPeriods: UInt64?
    public var throttledNanoseconds: UInt64?
    public var pidsPeak: Int?
    public init() {}
}

public struct CgroupError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
    init(_ error: SystemError) { description = error.description }
}

/// One container's cgroup(s): a single directory under cgroup v2, or one per controller under v1.
/// Created by Tandem, so Tandem may remove it; nothing else is touched. A sandbox's `destroy()`
/// kills what is left inside and removes every directory it made.
public protocol CgroupManager: AnyObject, Sendable {
    var version: CgroupVersion { get }
    /// Every directory this manager created (the ones `destroy` removes), in creation order.
    var directories: [String] { get }
    /// The `cgroup.procs` files a process must be written to, one per hierarchy.
    var processFiles: [String] { get }
    /// The files a single-threaded process moves itself into its cgroups by (writing "0" to
    /// each), without the kernel's global cgroup_threadgroup_rwsem: v1's `tasks` files, which move
    /// only the writing thread. Moving a whole process (cgroup.procs) takes that lock, whose write
    /// side waits for an RCU grace period. Empty on v2, where a thread may not leave its process's
    /// domain: there the parent writes the pid to `cgroup.procs` (`add(pid:)`).
    var joinFiles: [String] { get }
    func add(pid: pid_t) throws(CgroupError)
    func statistics() -> CgroupStatistics
    /// Processes the OOM killer killed inside (one file: what a run that reports nothing else reads).
    func oomKills() -> Int
    /// Host pids of every process inside.
    func processes() -> [pid_t]
    func freeze(_ frozen: Bool) throws(CgroupError)
    func killAll()
    func destroy() throws(CgroupError)
    /// This container's directory in `controller`'s hierarchy (v2: the one directory), or nil when
    /// this manager has none (v1: a controller it was not made with, or the host lacks).
    func directory(for controller: String) -> String?
    /// Writes one control file (`memory.max`, `devices.allow`…) in `controller`'s directory, for
    /// `CgroupResources` (the OCI runtime's `linux.resources`).
    func set(_ controller: String, _ file: String, _ value: String) throws(CgroupError)
}

extension CgroupManager {
    public func set(_ controller: String, _ file: String, _ value: String) throws(CgroupError) {
        guard let directory = directory(for: controller) else {
            throw CgroupError("this host has no \(version) \(controller) controller for \(file)")
        }
        let path = "\(directory)/\(file)"
        guard Files.kind(path) == .regular else { throw CgroupError("\(path): this kernel has no such control file") }
        try CgroupFile.write(path, value)
    }
}

public enum CgroupVersion: String, Sendable { case v1, v2 }

/// How this host mounts cgroups, and where Tandem's go.
public enum CgroupLayout: Equatable, Sendable {
    /// The unified hierarchy at `root` (a pure v2 host, or a fixture directory in tests).
    case v2(root: String)
    /// v1 controllers, each at its own mount (a v1 or a hybrid host: any cgroup2 mount there has no controllers).
    case v1(controllers: [String: String])

    /// statfs magic numbers (linux/magic.h).
    static let cgroup2Magic = 0x6367_7270
    static let tmpfsMagic = 0x0102_1994

    /// Reads the layout of `/sys/fs/cgroup`.
    public static func detect(root: String = "/sys/fs/cgroup") -> CgroupLayout? {
        if Files.filesystemMagic(root) == cgroup2Magic { return .v2(root: root) }
        var controllers: [String: String] = [:]
        for name in CgroupV1.knownControllers {
            let path = "\(root)/\(name)"
            if Files.kind(path + "/cgroup.procs") == .regular { controllers[name] = path }
        }
        return controllers.isEmpty ? nil : .v1(controllers: controllers)
    }

    public var version: CgroupVersion {
        if case .v2 = self { return .v2 }
        return .v1
    }

    /// The directories `create(parent:name:extra:)` makes, parents first, known before it makes
    /// them: a runtime writes them down first, so that a process killed halfway through creating
    /// them still leaves a record of what to remove (`CgroupLeftovers`).
    public func plannedDirectories(parent: String, name: String, extra: [String] = []) -> [String] {
        let components = parent.split(separator: "/").map(String.init)
        func chain(_ base: String) -> [String] {
            var paths: [String] = []
            var path = base
            for component in components { path += "/" + component; paths.append(path) }
            return paths + [path + "/" + name]
        }
        switch self {
        case .v2(let root): return chain(root)
        case .v1(let controllers):
            var seen = Set<String>()
            return (CgroupV1.controllerNames + extra.filter { !CgroupV1.controllerNames.contains($0) }).flatMap { controller -> [String] in
                guard let mount = controllers[controller], seen.insert(CgroupV1.hierarchy(mount)).inserted else { return [] }
                return chain(mount)
            }
        }
    }

    /// The directory `create(parent:name:extra:)` makes for `controller` (v2: the one leaf), or
    /// nil when the container gets none for it: known before it exists.
    public func plannedDirectory(for controller: String, parent: String, name: String, extra: [String] = []) -> String? {
        let path = (parent.split(separator: "/").map(String.init) + [name]).joined(separator: "/")
        switch self {
        case .v2(let root): return "\(root)/\(path)"
        case .v1(let controllers):
            guard CgroupV1.controllerNames.contains(controller) || extra.contains(controller), let mount = controllers[controller] else { return nil }
            return "\(mount)/\(path)"
        }
    }

    /// Creates the cgroup `parent/name` (e.g. tandem/3f2a…) and returns its manager. `extra`
    /// controllers (v1: hierarchies to make a directory in; v2: controllers to enable) come on top
    /// of the ones Tandem always uses; the host may lack some (`directory(for:)` says).
    public func create(parent: String, name: String, extra: [String] = []) throws(CgroupError) -> any CgroupManager {
        switch self {
        case .v2(let root): return try CgroupV2(root: root, parent: parent, name: name, extra: extra)
        case .v1(let controllers): return try CgroupV1(controllers: controllers, parent: parent, name: name, extra: extra)
        }
    }
}

/// Small helpers both versions share: one value per file, errors naming the file.
extension CgroupLayout {
    /// For a caller without root (rootless): the first directory in which `planned` (parents
    /// first, as `plannedDirectories` gives) would have to be made and that this user may not
    /// write; nil when it may make them all (a delegated subtree).
    public static func unwritable(_ planned: [String]) -> String? {
        for directory in planned where access(directory, F_OK) != 0 {
            let parent = Files.directory(of: directory)
            if access(parent, W_OK) != 0 { return parent }
        }
        return nil
    }
}

/// How a process already running joins a container's cgroups (exec, hooks).
public enum CgroupJoin {
    /// The files a single-threaded process writes "0" to, to join the cgroups whose `cgroup.procs`
    /// files are `processFiles`: each one's `tasks` sibling where there is one (v1: moves only the
    /// writer, without the global lock; see `CgroupManager.joinFiles`), else `cgroup.procs`.
    public static func files(forProcessFiles processFiles: [String]) -> [String] {
        processFiles.map { procs in
            let tasks = Files.directory(of: procs) + "/tasks"
            return access(tasks, F_OK) == 0 ? tasks : procs
        }
    }
}

enum CgroupFile {
    static func write(_ path: String, _ value: String) throws(CgroupError) {
        do {
            // O_TRUNC as a shell's `>` does: cgroupfs replaces the value anyway; a plain file (a test's) must too.
            let fd = try FileDescriptor.open(path, O_WRONLY | O_TRUNC)
            var text = value
            let result: Result<Void, SystemError> = text.withUTF8 { buffer in
                Result { () throws(SystemError) in try fd.writeAll(UnsafeRawBufferPointer(buffer)) }
            }
            try result.get()
        } catch {
            throw CgroupError("write \(value) to \(path): \(error.reason) (\(error.errnoName))")
        }
    }

    static func read(_ path: String) -> String? {
        Files.readText(path).map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 }
    }

    static func number(_ path: String) -> UInt64? { read(path).flatMap { UInt64($0) } }

    /// "key value" lines (memory.events, cpu.stat, memory.oom_control).
    static func keyed(_ path: String) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in (read(path) ?? "").split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = UInt64(parts[1]) { values[String(parts[0])] = value }
        }
        return values
    }

    static func pids(_ path: String) -> [pid_t] {
        (read(path) ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    /// Makes a container's cgroup `path` below `parents` (Tandem's shared tandem/ levels, made
    /// as needed). Another container that leaves removes an empty parent, possibly between our
    /// two mkdirs: then the parents are made again and the leaf retried.
    static func makeLeaf(_ path: String, parents: [String]) throws(CgroupError) {
        for _ in 0..<10 {
            for parent in parents where mkdir(parent, 0o755) != 0 && errno != EEXIST {
                throw CgroupError(SystemError("mkdir", parent))
            }
            if mkdir(path, 0o755) == 0 { return }
            if errno != ENOENT { break }
        }
        try makeDirectory(path)
    }

    static func makeDirectory(_ path: String) throws(CgroupError) {
        guard mkdir(path, 0o755) == 0 else {
            let error = SystemError("mkdir", path)
            throw CgroupError(error.errno == EEXIST ? "cgroup \(path) already exists (another container's?)" : error.description)
        }
    }

    /// rmdir, retrying briefly while killed processes finish exiting.
    /// Removes a cgroup directory. A busy one (processes still in it) gets `emptying` called once
    /// (kill them) and is retried for up to a second: an empty cgroup, the usual case once a
    /// container has ended, costs one rmdir instead of reading every cgroup.procs first.
    static func removeDirectory(_ path: String, emptying: () -> Void = {}) throws(CgroupError) {
        var emptied = false
        for _ in 0..<200 {
            if rmdir(path) == 0 || errno == ENOENT { return }
            guard errno == EBUSY else { break }
            if !emptied { emptying(); emptied = true; continue }
            usleep(5_000)
        }
        throw CgroupError(SystemError("rmdir", path))
    }

    /// Bytes to a human size ("32 MiB").
    public static func size(_ bytes: UInt64) -> String {
        if bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
        if bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

extension CgroupLimits {
    /// A human size: "6 MiB".
    public static func describe(bytes: UInt64) -> String { CgroupFile.size(bytes) }
}

/// What a container whose runtime died left in cgroupfs: found by path, not by a manager.
public enum CgroupLeftovers {
    /// SIGKILLs every process in `directories` until they are empty (at most ~0.2 s each).
    public static func killAll(in directories: [String]) {
        for directory in directories where Files.kind(directory) == .directory {
            for _ in 0..<100 {
                let pids = CgroupFile.pids(directory + "/cgroup.procs")
                if pids.isEmpty { break }
                pids.forEach { kill($0, SIGKILL) }
                usleep(2_000)
            }
        }
    }

    /// The listed directories with no other listed directory below them: a container's own
    /// cgroups, as opposed to the parents it was made in (which may hold other processes).
    public static func leaves(_ directories: [String]) -> [String] {
        let unique = Array(Set(directories))
        return unique.filter { path in !unique.contains { $0.hasPrefix(path + "/") } }.sorted()
    }

    /// Removes `directories`, deepest first. A leaf is retried while its killed processes finish
    /// exiting; a parent is tried once — it stays while another container uses it.
    public static func remove(_ directories: [String]) {
        let leaves = Set(leaves(directories))
        for directory in leaves.sorted(by: { $0.count > $1.count }) {
            for _ in 0..<100 where rmdir(directory) != 0 && errno == EBUSY { usleep(5_000) }
        }
        CgroupParentLock.whenUnused {
            for directory in Set(directories).subtracting(leaves).sorted(by: { $0.count > $1.count }) { rmdir(directory) }
        }
    }
}
