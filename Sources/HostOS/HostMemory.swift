import Glibc

/// Total RAM of the host.
public enum HostMemory {
    /// The host's RAM: MemTotal of /proc/meminfo, from sysconf (glibc asks sysinfo(2): no file
    /// to read and parse on the launch path).
    public static func totalMiB() -> Int? {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return nil }
        return Int((UInt64(pages) * UInt64(pageSize)) >> 20)
    }
}
