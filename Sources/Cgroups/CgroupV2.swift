import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A cgroup in the unified hierarchy (Documentation/admin-guide/cgroup-v2.rst): one directory,
/// controllers enabled down the path through `cgroup.subtree_control`. It only ever writes files
/// the kernel made: tests stand a directory with those files in for cgroupfs (CgroupV2FixtureTests).
public final class CgroupV2: CgroupManager, @unchecked Sendable {
    public let version = CgroupVersion.v2
    public let path: String
    public private(set) var directories: [String] = []
    /// The controllers Tandem limits.
    static let controllers = ["cpu", "memory", "pids"]
    let wanted: [String]

    /// The manager of a cgroup that exists: one rebuilt from saved state (`ps`, `kill`, `pause`
    /// of a container another process made). `destroy` removes `path` only.
    public init(existing path: String) {
        self.path = path
        wanted = Self.controllers
        directories = [path]
    }

    init(root: String, parent: String, name: String, extra: [String] = []) throws(CgroupError) {
        wanted = Self.controllers + extra.filter { !Self.controllers.contains($0) }
        path = "\(root)/\(parent)/\(name)"
        // Another container that leaves removes an empty parent, possibly between making it and
        // making ours: then the parents (and their controllers) are made again.
        for attempt in 0..<10 {
            directories = []
            try makeParents(root: root, parent: parent)
            if mkdir(path, 0o755) == 0 { break }
            if errno == ENOENT && attempt < 9 { continue }
            try CgroupFile.makeDirectory(path)  // says why (another container's name, permissions)
            break
        }
        directories.append(path)
    }

    /// Enables the controllers from the root down to the container's parent, making the
    /// parents — Tandem's own (tandem/), removed when the last container leaves.
    private func makeParents(root: String, parent: String) throws(CgroupError) {
        var level = root
        for component in parent.split(separator: "/") {
            try enableControllers(in: level)
            level += "/\(component)"
            if Files.kind(level) == .missing, mkdir(level, 0o755) != 0, errno != EEXIST { throw CgroupError(SystemError("mkdir", level)) }
            directories.append(level)
        }
        try enableControllers(in: level)
    }

    private func enableControllers(in directory: String) throws(CgroupError) {
        let available = Set((CgroupFile.read("\(directory)/cgroup.controllers") ?? "").split(separator: " ").map(String.init))
        let wanted = self.wanted.filter { available.contains($0) }
        let enabled = Set((CgroupFile.read("\(directory)/cgroup.subtree_control") ?? "").split(separator: " ").map(String.init))
        let missing = wanted.filter { !enabled.contains($0) }
        guard !missing.isEmpty else { return }
        try CgroupFile.write("\(directory)/cgroup.subtree_control", missing.map { "+" + $0 }.joined(separator: " "))
    }

    private func write(_ file: String, _ value: String) throws(CgroupError) {
        try CgroupFile.write("\(path)/\(file)", value)
    }

    public var processFiles: [String] { ["\(path)/cgroup.procs"] }
    public var joinFiles: [String] { [] }

    public func directory(for controller: String) -> String? { path }

    public func set(_ controller: String, _ file: String, _ value: String) throws(CgroupError) {
        guard Files.kind("\(path)/\(file)") == .regular else {
            throw CgroupError("\(path)/\(file): no such control file (is the \(controller) controller available?)")
        }
        try write(file, value)
    }

    public func add(pid: pid_t) throws(CgroupError) { try write("cgroup.procs", String(pid)) }

    public func statistics() -> CgroupStatistics {
        var stats = CgroupStatistics()
        stats.memoryPeakBytes = CgroupFile.number("\(path)/memory.peak")
        stats.memoryCurrentBytes = CgroupFile.number("\(path)/memory.current")
        let cpu = CgroupFile.keyed("\(path)/cpu.stat")
        stats.cpuNanoseconds = cpu["usage_usec"].map { $0 * 1000 }
        stats.throttledPeriods = cpu["nr_throttled"]
        stats.throttledNanoseconds = cpu["throttled_usec"].map { $0 * 1000 }
        stats.oomKills = oomKills()
        stats.pidsPeak = CgroupFile.number("\(path)/pids.peak").map { Int($0) }
        return stats
    }

    public func oomKills() -> Int { Int(CgroupFile.keyed("\(path)/memory.events")["oom_kill"] ?? 0) }

    public func processes() -> [pid_t] { CgroupFile.pids("\(path)/cgroup.procs") }

    public func freeze(_ frozen: Bool) throws(CgroupError) {
        try CgroupFreezer.set(frozen, directories: [path])
    }

    public func killAll() {
        if Files.kind("\(path)/cgroup.kill") == .regular, (try? CgroupFile.write("\(path)/cgroup.kill", "1")) != nil { return }
        for pid in processes() { kill(pid, SIGKILL) }
    }

    /// Kills what is left (only when the directory is busy) and removes it.
    public func destroy() throws(CgroupError) {
        try CgroupFile.removeDirectory(path, emptying: killAll)
        // Parents Tandem made go too, unless another container still uses them.
        CgroupParentLock.whenUnused { for directory in directories.dropLast().reversed() { rmdir(directory) } }
    }
}
