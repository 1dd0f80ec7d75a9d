import CLinux
import HostOS

/// The OCI runtime spec's `linux.resources` (config-linux.md "Control groups") and how they are
/// written into a container's cgroup: v1's or v2's files, with runc's v1 → v2 conversions. Both
/// front ends reach the cgroup only through this (tandem ctr's options become these fields).
/// Every failure names the field ("linux.resources.memory.limit: …").
public struct CgroupResources: Sendable {
    public struct ThrottleDevice: Sendable {
    public var major: Int64, minor: Int64, rate: UInt64
        public init(major: Int64, minor: Int64, rate: UInt64) {
            self.major = major
            self.minor = minor
            self.rate = rate
        }
    }

    /// memory: limit, reservation, swap (memory plus swap, as v1's memsw), swappiness, disableOOMKiller.
    public var memoryLimit: Int64?, memoryReservation: Int64?, memorySwap: Int64?, swappiness: UInt64?
    public var disableOOMKiller: Bool?
    public var cpuShares: UInt64?, cpuQuota: Int64?, cpuPeriod: UInt64?, cpus: String?, mems: String?
    public var cpuRealtimeRuntime: Int64?, cpuRealtimePeriod: UInt64?
    public var pidsLimit: Int64?
    public var devices: [DeviceRule] = []
    public var blkioWeight: UInt64?
    public var throttle: [(file: String, devices: [ThrottleDevice])] = []
    public var hugepageLimits: [(pageSize: String, limit: UInt64)] = []
    public var unified: [(String, String)] = []
    /// blockIO.leafWeight: v1 blkio.leaf_weight, which only some I/O schedulers (CFQ/BFQ) have.
    public var blkioLeafWeight: UInt64?
    /// network: v1 net_cls.classid and net_prio.ifpriomap (cgroup v2 has neither).
    public var netClassID: UInt32?
    public var netPriorities: [(interface: String, priority: UInt32)] = []

    /// The first limit set (its linux.resources field), device rules aside: what a container
    /// without a cgroup of its own (rootless, none delegated) cannot have.
    public var firstLimit: String? {
        let set: [(String, Bool)] = [
            ("memory.limit", memoryLimit != nil), ("memory.reservation", memoryReservation != nil), ("memory.swap", memorySwap != nil),
            ("memory.swappiness", swappiness != nil), ("memory.disableOOMKiller", disableOOMKiller != nil),
            ("cpu.shares", cpuShares != nil), ("cpu.quota", cpuQuota != nil), ("cpu.period", cpuPeriod != nil), ("cpu.cpus", cpus != nil),
            ("cpu.mems", mems != nil), ("cpu.realtimeRuntime", cpuRealtimeRuntime != nil), ("cpu.realtimePeriod", cpuRealtimePeriod != nil),
            ("pids.limit", pidsLimit != nil), ("blockIO", blkioWeight != nil || blkioLeafWeight != nil || !throttle.isEmpty),
            ("hugepageLimits", !hugepageLimits.isEmpty), ("unified", !unified.isEmpty),
            ("network", netClassID != nil || !netPriorities.isEmpty),
        ]
        return set.first { $0.1 }?.0
    }

    public init() {}

    /// The v1 hierarchies (v2 controllers) these need beyond the ones every container gets
    /// (memory, cpu, cpuacct, pids, freezer); a v1 container always gets a devices hierarchy.
    public func extraControllers(version: CgroupVersion) -> [String] {
        var extra: [String] = []
        if version == .v1 { extra.append("devices") }
        if cpus != nil || mems != nil { extra.append("cpuset") }
        if blkioWeight != nil || !throttle.isEmpty { extra.append(version == .v1 ? "blkio" : "io") }
        if !hugepageLimits.isEmpty { extra.append("hugetlb") }
        if version == .v1 && netClassID != nil { extra.append("net_cls") }
        if version == .v1 && !netPriorities.isEmpty { extra.append("net_prio") }
        return extra
    }

    /// Writes the limits into `cgroup` (the device rules: `applyDevices`). Returns warnings: what
    /// was asked for and ignored because the host cannot do it and runc's rule is to go on.
    @discardableResult
    public func apply(to cgroup: any CgroupManager) throws(CgroupError) -> [String] {
        var warnings: [String] = []
        let r = self
        func set(_ field: String, _ controller: String, _ file: String, _ value: String) throws(CgroupError) {
            do { try cgroup.set(controller, file, value) } catch { throw CgroupError("linux.resources.\(field): \(error.description)") }
        }
        let v1 = cgroup.version == .v1
        // A limit of 0 is no limit (runc reads it as unset).
        if let limit = r.memoryLimit, limit != 0 {
            try set("memory.limit", "memory", v1 ? "memory.limit_in_bytes" : "memory.max", limit < 0 ? (v1 ? "-1" : "max") : String(limit))
        }
        if let reservation = r.memoryReservation {
            try set("memory.reservation", "memory", v1 ? "memory.soft_limit_in_bytes" : "memory.low", reservation < 0 ? (v1 ? "-1" : "max") : String(reservation))
        }
        if let swap = r.memorySwap {
            if v1 {
                guard let memory = cgroup.directory(for: "memory"), Files.kind(memory + "/memory.memsw.limit_in_bytes") == .regular else {
                    throw CgroupError("linux.resources.memory.swap: this kernel does not account swap (no memory.memsw.limit_in_bytes; boot with swapaccount=1)")
                }
                try set("memory.swap", "memory", "memory.memsw.limit_in_bytes", swap < 0 ? "-1" : String(swap))
            } else {
                // OCI's swap is memory + swap (v1's memsw); v2's memory.swap.max is the swap alone.
                let value = swap < 0 ? "max" : String(max(0, swap - max(0, r.memoryLimit ?? 0)))
                try set("memory.swap", "memory", "memory.swap.max", value)
            }
        }
        if let swappiness = r.swappiness {
            guard v1 else { throw CgroupError("linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness") }
            try set("memory.swappiness", "memory", "memory.swappiness", String(swappiness))
        }
        if r.disableOOMKiller == true {
            guard v1 else { throw CgroupError("linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer") }
            try set("memory.disableOOMKiller", "memory", "memory.oom_control", "1")
        }
        if let shares = r.cpuShares {
            if v1 { try set("cpu.shares", "cpu", "cpu.shares", String(shares)) } else {
                let weight = shares == 0 ? 100 : 1 + ((max(2, min(shares, 262_144)) - 2) * 9999) / 262_142
                try set("cpu.shares", "cpu", "cpu.weight", String(weight))
            }
        }
        if r.cpuQuota != nil || r.cpuPeriod != nil {
            if v1 {
                if let period = r.cpuPeriod { try set("cpu.period", "cpu", "cpu.cfs_period_us", String(period)) }
                if let quota = r.cpuQuota { try set("cpu.quota", "cpu", "cpu.cfs_quota_us", String(quota)) }
            } else {
                let quota = r.cpuQuota.map { $0 <= 0 ? "max" : String($0) } ?? "max"
                try set("cpu.quota", "cpu", "cpu.max", "\(quota) \(r.cpuPeriod ?? 100_000)")
            }
        }
        if let runtime = r.cpuRealtimeRuntime { try set("cpu.realtimeRuntime", "cpu", "cpu.rt_runtime_us", String(runtime)) }
        if let period = r.cpuRealtimePeriod { try set("cpu.realtimePeriod", "cpu", "cpu.rt_period_us", String(period)) }
        if let cpus = r.cpus { try set("cpu.cpus", "cpuset", "cpuset.cpus", cpus) }
        if let mems = r.mems { try set("cpu.mems", "cpuset", "cpuset.mems", mems) }
        if let pids = r.pidsLimit { try set("pids.limit", "pids", "pids.max", pids <= 0 ? "max" : String(pids)) }
        if let weight = r.blkioWeight {
            if v1 { try set("blockIO.weight", "blkio", "blkio.weight", String(weight)) } else {
                try set("blockIO.weight", "io", "io.weight", "default \(1 + (weight - 10) * 9999 / 990)")
            }
        }
        for (file, devices) in r.throttle {
            for device in devices {
                if v1 {
                    try set("blockIO.throttle", "blkio", "blkio.throttle.\(file)_device", "\(device.major):\(device.minor) \(device.rate)")
                } else {
                    let key = ["read_bps": "rbps", "write_bps": "wbps", "read_iops": "riops", "write_iops": "wiops"][file] ?? file
                    try set("blockIO.throttle", "io", "io.max", "\(device.major):\(device.minor) \(key)=\(device.rate)")
                }
            }
        }
        for (size, limit) in r.hugepageLimits {
            try set("hugepageLimits", "hugetlb", "hugetlb.\(size).\(v1 ? "limit_in_bytes" : "max")", String(limit))
        }
        if !r.unified.isEmpty {
            guard !v1 else { throw CgroupError("linux.resources.unified: needs cgroup v2 (this host's cgroups are v1)") }
            for (file, value) in r.unified { try set("unified.\(file)", String(file.prefix { $0 != "." }), file, value) }
        }
        if let leaf = r.blkioLeafWeight {
            // Applied where the scheduler offers it; elsewhere ignored with a warning (runc and crun
            // fail on a file only CFQ/BFQ have, which most hosts' schedulers do not).
            if v1, let blkio = cgroup.directory(for: "blkio"), Files.kind(blkio + "/blkio.leaf_weight") == .regular {
                try set("blockIO.leafWeight", "blkio", "blkio.leaf_weight", String(leaf))
            } else {
                warnings.append("linux.resources.blockIO.leafWeight: ignored (\(v1 ? "this host's I/O scheduler has no blkio.leaf_weight" : "cgroup v2 has no leaf weight"))")
            }
        }
        if r.netClassID != nil || !r.netPriorities.isEmpty {
            guard v1 else { throw CgroupError("linux.resources.network: cgroup v2 has no net_cls or net_prio controller (classify traffic with eBPF or nftables' socket cgroupv2 match instead)") }
            if let classID = r.netClassID {
                guard cgroup.directory(for: "net_cls") != nil else {
                    throw CgroupError("linux.resources.network.classID: this host has no net_cls hierarchy mounted under /sys/fs/cgroup")
                }
                try set("network.classID", "net_cls", "net_cls.classid", String(classID))
            }
            if !r.netPriorities.isEmpty {
                guard cgroup.directory(for: "net_prio") != nil else {
                    throw CgroupError("linux.resources.network.priorities: this host has no net_prio hierarchy mounted under /sys/fs/cgroup")
                }
                for (interface, priority) in r.netPriorities { try set("network.priorities", "net_prio", "net_prio.ifpriomap", "\(interface) \(priority)") }
            }
        }
        return warnings
    }

    /// The device cgroup (v1 lists, v2 an eBPF program): deny all, `devices`, the always-allowed
    /// nodes, then `ownDevices` (the nodes the container is given).
    public func applyDevices(to cgroup: any CgroupManager, ownDevices: [DeviceRule] = []) throws(CgroupError) {
        do { try DeviceAccess.apply(deviceRules(ownDevices: ownDevices), to: cgroup) } catch {
            throw CgroupError("linux.resources.devices: \(error.description)")
        }
    }

    /// The device rules a container gets, in order (the last match wins): deny all, these
    /// resources' rules, the always-allowed nodes, then its own devices. A config without rules
    /// still gets a device cgroup (as with runc): the default is deny.
    public func deviceRules(ownDevices: [DeviceRule] = []) -> [DeviceRule] {
        [DeviceAccess.denyAll] + devices + DeviceAccess.alwaysAllowed + ownDevices
    }
}
