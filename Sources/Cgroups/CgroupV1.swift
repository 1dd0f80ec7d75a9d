import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A container's cgroups in the v1 hierarchies (Documentation/admin-guide/cgroup-v1/): one
/// directory per controller Tandem uses, each under `parent` (e.g. tandem/<id>).
public final class CgroupV1: CgroupManager, @unchecked Sendable {
    public let version = CgroupVersion.v1
    /// The controllers Tandem uses, by the name of their mount under /sys/fs/cgroup.
    static let controllerNames = ["memory", "cpu", "cpuacct", "pids", "freezer"]
    /// Every v1 controller a container may ask for (the OCI runtime's `linux.resources`).
    static let knownControllers = controllerNames + ["devices", "blkio", "cpuset", "hugetlb", "net_cls", "net_prio", "perf_event"]
    /// controller → this container's directory in its hierarchy.
    public let paths: [String: String]
    public private(set) var directories: [String] = []

    init(controllers: [String: String], parent: String, name: String, extra: [String] = []) throws(CgroupError) {
        var paths: [String: String] = [:]
        var made: [String] = []
        var leaves = Set<String>()
        var byHierarchy: [String: String] = [:]  // a co-mounted hierarchy (cpu,cpuacct) gets one directory
        do {
            for controller in Self.controllerNames + extra.filter({ !Self.controllerNames.contains($0) }) {
                guard let mount = controllers[controller] else { continue }
                let hierarchy = Self.hierarchy(mount)
                if let existing = byHierarchy[hierarchy] { paths[controller] = existing; continue }
                // Parents are Tandem's own (tandem/): removed when the last container leaves.
                var level = mount
                var levels: [String] = []
                for component in parent.split(separator: "/") {
                    level += "/\(component)"
                    levels.append(level)
                    if !made.contains(level) { made.append(level) }
                }
                let path = "\(level)/\(name)"
                try CgroupFile.makeLeaf(path, parents: levels)
                made.append(path)
                leaves.insert(path)
                // A new cpuset cgroup starts with no CPUs and no memory nodes, and takes no task
                // until it has both: each level gets its parent's.
                if controller == "cpuset" { try Self.inheritCpuset(from: mount, levels: levels + [path]) }
                paths[controller] = path
                byHierarchy[hierarchy] = path
            }
        } catch {
            for directory in made.reversed() where leaves.contains(directory) { rmdir(directory) }
            CgroupParentLock.whenUnused { for directory in made.reversed() where !leaves.contains(directory) { rmdir(directory) } }  // parents still in use stay
            throw error
        }
        self.paths = paths
        directories = made
    }

    static func inheritCpuset(from mount: String, levels: [String]) throws(CgroupError) {
        var parent = mount
        for level in levels {
            for file in ["cpuset.cpus", "cpuset.mems"] where (CgroupFile.read("\(level)/\(file)") ?? "").isEmpty {
                try CgroupFile.write("\(level)/\(file)", CgroupFile.read("\(parent)/\(file)") ?? "")
            }
            parent = level
        }
    }

    public func directory(for controller: String) -> String? { paths[controller] }

    /// Which hierarchy a controller's mount is: co-mounted controllers (cpu and cpuacct, linked
    /// to cpu,cpuacct) are one directory. Its device and inode (one stat, where realpath would
    /// read every component's link).
    static func hierarchy(_ path: String) -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { return path }
        return "\(info.st_dev):\(info.st_ino)"
    }

    private func file(_ controller: String, _ name: String) -> String? { paths[controller].map { "\($0)/\(name)" } }

    private func write(_ controller: String, _ name: String, _ value: String) throws(CgroupError) {
        guard let path = file(controller, name) else {
            throw CgroupError("this host has no v1 \(controller) controller mounted under /sys/fs/cgroup")
        }
        try CgroupFile.write(path, value)
    }

    public var processFiles: [String] { Array(Set(paths.values)).sorted().map { "\($0)/cgroup.procs" } }
    public var joinFiles: [String] { Array(Set(paths.values)).sorted().map { "\($0)/tasks" } }

    public func add(pid: pid_t) throws(CgroupError) {
        for path in processFiles { try CgroupFile.write(path, String(pid)) }
    }

    public func statistics() -> CgroupStatistics {
        var stats = CgroupStatistics()
        stats.memoryPeakBytes = file("memory", "memory.max_usage_in_bytes").flatMap(CgroupFile.number)
        stats.memoryCurrentBytes = file("memory", "memory.usage_in_bytes").flatMap(CgroupFile.number)
        stats.cpuNanoseconds = file("cpuacct", "cpuacct.usage").flatMap(CgroupFile.number)
        if let path = file("cpu", "cpu.stat") {
            let cpu = CgroupFile.keyed(path)
            stats.throttledPeriods = cpu["nr_throttled"]
            stats.throttledNanoseconds = cpu["throttled_time"]
        }
        stats.oomKills = oomKills()
        return stats
    }

    public func oomKills() -> Int {
        Int(file("memory", "memory.oom_control").map { CgroupFile.keyed($0)["oom_kill"] ?? 0 } ?? 0)
    }

    public func processes() -> [pid_t] {
        Array(Set(processFiles.flatMap { CgroupFile.pids($0) })).sorted()
    }

    public func freeze(_ frozen: Bool) throws(CgroupError) {
        guard let directory = directory(for: "freezer") else { throw CgroupError("this host has no v1 freezer controller") }
        try CgroupFreezer.set(frozen, directories: [directory])
    }

    public func killAll() {
        for _ in 0..<100 {
            let pids = processes()
            if pids.isEmpty { return }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(2_000)
        }
    }

    /// Kills what is left (only when a directory is busy) and removes the directories.
    public func destroy() throws(CgroupError) {
        var firstError: CgroupError?
        // Leaves first, then the parents Tandem made (those fail quietly while other containers use them).
        for directory in directories.reversed() where paths.values.contains(directory) {
            do { try CgroupFile.removeDirectory(directory, emptying: killAll) } catch { firstError = firstError ?? error }
        }
        CgroupParentLock.whenUnused {
            for directory in directories.reversed() where !paths.values.contains(directory) { rmdir(directory) }
        }
        if let firstError { throw firstError }
    }
}
