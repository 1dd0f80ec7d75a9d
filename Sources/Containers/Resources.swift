import CLinux
import Cgroups
import HostOS

/// `linux.resources` written to the container's cgroup, in cgroup v1's or v2's files
/// (config-linux.md "Control groups"; the v1 → v2 conversions are runc's). Every failure names
/// the config field.
package enum ResourceWriter {
    /// The v1 hierarchies a config needs beyond Tandem's own (memory, cpu, cpuacct, pids, freezer).
    package static func extraControllers(_ config: OCIConfig, version: CgroupVersion) -> [String] {
        let r = config.resources
        var extra: [String] = []
        if version == .v1 { extra.append("devices") }
        if r.cpus != nil || r.mems != nil { extra.append("cpuset") }
        if r.blkioWeight != nil || !r.throttle.isEmpty { extra.append(version == .v1 ? "blkio" : "io") }
        if !r.hugepageLimits.isEmpty { extra.append("hugetlb") }
        return extra
    }

    package static func apply(_ config: OCIConfig, to cgroup: any CgroupManager) throws(OCIError) {
        let r = config.resources
        func set(_ field: String, _ controller: String, _ file: String, _ value: String) throws(OCIError) {
            do { try cgroup.set(controller, file, value) } catch { throw OCIError("config.json: linux.resources.\(field): \(error.description)") }
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
                try set("memory.swap", "memory", "memory.memsw.limit_in_bytes", swap < 0 ? "-1" : String(swap))
            } else {
                // OCI's swap is memory + swap (v1's memsw); v2's memory.swap.max is the swap alone.
                let value = swap < 0 ? "max" : String(max(0, swap - max(0, r.memoryLimit ?? 0)))
                try set("memory.swap", "memory", "memory.swap.max", value)
            }
        }
        if let swappiness = r.swappiness {
            guard v1 else { throw OCIError("config.json: linux.resources.memory.swappiness: cgroup v2 has no per-cgroup swappiness") }
            try set("memory.swappiness", "memory", "memory.swappiness", String(swappiness))
        }
        if r.disableOOMKiller == true {
            guard v1 else { throw OCIError("config.json: linux.resources.memory.disableOOMKiller: cgroup v2 cannot disable the OOM killer") }
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
            guard !v1 else { throw OCIError("config.json: linux.resources.unified: needs cgroup v2 (this host's cgroups are v1)") }
            for (file, value) in r.unified { try set("unified.\(file)", String(file.prefix { $0 != "." }), file, value) }
        }
        try applyDevices(config, to: cgroup)
    }

    /// The rules a container gets, in order (the last match wins): deny all, the config's, the
    /// always-allowed nodes, then its own devices. A config without rules still gets a device
    /// cgroup (as with runc): the default is deny.
    package static func deviceRules(_ config: OCIConfig) -> [DeviceRule] {
        var rules = [DeviceAccess.denyAll] + config.resources.devices + DeviceAccess.alwaysAllowed
        for device in config.devices where device.type != "p" {
            rules.append(DeviceRule(allow: true, type: device.type == "b" ? "b" : "c", major: device.major, minor: device.minor))
        }
        return rules
    }

    /// The device cgroup (`DeviceAccess`: v1 lists or a v2 eBPF program).
    package static func applyDevices(_ config: OCIConfig, to cgroup: any CgroupManager) throws(OCIError) {
        do { try DeviceAccess.apply(deviceRules(config), to: cgroup) } catch {
            throw OCIError("config.json: linux.resources.devices: \(error.description)")
        }
    }
}
