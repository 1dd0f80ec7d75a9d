#if canImport(Glibc)
import Glibc
#endif

/// Host clocks. Every latency Tandem reports is CLOCK_MONOTONIC nanoseconds, so a timestamp taken
/// in the VMM and one taken by a benchmark harness in another process can be subtracted.
public enum Clock {
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

/// Peak resident set size of this process, bytes (getrusage's ru_maxrss is in KiB on Linux).
public func peakResidentBytes() -> UInt64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return UInt64(usage.ru_maxrss) * 1024
}
