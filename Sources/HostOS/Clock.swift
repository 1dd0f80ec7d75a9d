#if canImport(Glibc)
import Glibc
#endif

/// Host clocks. Every latency Tandem reports is CLOCK_MONOTONIC nanoseconds, so a timestamp taken
/// in the VMM and one taken by a benchmark harness in another process can be subtracted.
public enum Clock {
    /// `seconds` as nanoseconds, saturating: negative and NaN give 0, more than UInt64 holds gives
    /// UInt64.max (a time never reached). `UInt64(seconds * 1e9)` traps instead — `--timeout 2e10`
    /// crashed `tandem vm run` with SIGILL.
    public static func nanoseconds(seconds: Double) -> UInt64 {
        guard seconds > 0 else { return 0 }
        let value = seconds * 1e9
        return value < 18_446_744_073_709_549_568 ? UInt64(value) : .max
    }

    /// CLOCK_MONOTONIC `seconds` from now, saturating at UInt64.max (never).
    public static func deadline(after seconds: Double) -> UInt64 {
        let (sum, overflow) = monotonicNanoseconds().addingReportingOverflow(nanoseconds(seconds: seconds))
        return overflow ? .max : sum
    }

    public static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    /// The calling process's consumed CPU time (user + system), nanoseconds.
    public static func processCPUNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}

/// This process's memory as /proc/self/status tells it, bytes.
public struct ResidentMemory: Sendable {
    /// VmHWM: the peak resident set of this process image. (getrusage's ru_maxrss is not used: across
    /// exec it keeps the launcher's peak — a vfork from a 15 MiB Python reports 15 MiB.)
    public var peak: UInt64 = 0
    public var anonymous: UInt64 = 0
    public var file: UInt64 = 0
    public var shared: UInt64 = 0

    public init() {}

    public static func current() -> ResidentMemory {
        var memory = ResidentMemory()
        let status = ProcFields(path: "/proc/self/status")
        memory.peak = (status.number("VmHWM") ?? 0) * 1024
        memory.anonymous = (status.number("RssAnon") ?? 0) * 1024
        memory.file = (status.number("RssFile") ?? 0) * 1024
        memory.shared = (status.number("RssShmem") ?? 0) * 1024
        return memory
    }
}

extension Clock {
    /// CLOCK_REALTIME, for "created" times people read.
    public static func realtimeNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }
}
