import Cgroups
import Containers
import HostOS

/// `tandem ctr run --report FILE`: what happened, as JSON (schema tandem.ctr-run/1).
struct CtrRunReport {
    let spec: ContainerSpec
    let result: ContainerResult
    let processStart: UInt64?

    func json() -> JSON {
        func ms(_ nanoseconds: UInt64) -> JSON {
            guard let start = processStart, nanoseconds >= start else { return .null }
            return .double(Double(nanoseconds - start) / 1e6)
        }
        let stats = result.statistics
        func optional(_ value: UInt64?) -> JSON { value.map { .uint($0) } ?? .null }
        return .object([
            ("schema", .string("tandem.ctr-run/1")),
            ("backend", .string("container")),
            ("id", .string(spec.id)),
            ("command", .array(spec.command.map { .string($0) })),
            ("exit_status", .int(Int64(result.status))),
            ("signal", result.signal.map { .int(Int64($0)) } ?? .null),
            ("oom_killed", .bool(result.oomKilled)),
            ("cgroup_version", .string(result.cgroupVersion.rawValue)),
            ("limits", .object([
                ("memory_bytes", optional(result.limits.memoryBytes)),
                ("cpu_quota_us", result.limits.cpuQuotaMicroseconds.map { .int(Int64($0)) } ?? .null),
                ("cpu_period_us", .int(Int64(result.limits.cpuPeriodMicroseconds))),
                ("pids", result.limits.pids.map { .int(Int64($0)) } ?? .null),
            ])),
            ("phases_ms", .object([("cloned", ms(result.clonedNanoseconds)), ("started", ms(result.startedNanoseconds)),
                                   ("exited", ms(result.exitedNanoseconds))])),
            ("memory_peak_bytes", optional(stats.memoryPeakBytes)),
            ("cpu_ns", optional(stats.cpuNanoseconds)),
            ("throttled_periods", optional(stats.throttledPeriods)),
            ("throttled_ns", optional(stats.throttledNanoseconds)),
            ("oom_kills", .int(Int64(stats.oomKills))),
            // What the container wrote to its own (overlay upper) layer, measured after it ended.
            ("writable_layer_bytes", optional(result.writableLayerBytes)),
        ])
    }
}
