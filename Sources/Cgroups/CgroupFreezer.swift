import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The cgroup freezer of a container, found from its saved cgroup directories (so `pause`,
/// `resume`, `state` and `ps` of both front ends use the one code path): v1, the freezer
/// hierarchy's directory (`freezer.state`); v2, the leaf (`cgroup.freeze`, `cgroup.events`).
/// Writing the request is not the end: the kernel freezes task by task (v1 says FREEZING, v2's
/// cgroup.events says `frozen 0`), so `set` waits until it reports the state, as youki and runc do.
public enum CgroupFreezer {
    /// How long a freeze may take before it is given up (and thawed back).
    public static let timeoutNanoseconds: UInt64 = 2_000_000_000

    enum Control { case v1(String), v2(String) }

    static func control(_ directories: [String]) -> Control? {
        for directory in directories.reversed() {
            if Files.kind(directory + "/cgroup.freeze") == .regular { return .v2(directory) }
            if Files.kind(directory + "/freezer.state") == .regular { return .v1(directory) }
        }
        return nil
    }

    /// Whether the kernel reports the cgroup frozen (nil: no freezer among `directories`).
    public static func isFrozen(_ directories: [String]) -> Bool? {
        switch control(directories) {
        case .v1(let directory): return CgroupFile.read(directory + "/freezer.state") == "FROZEN"
        case .v2(let directory): return CgroupFile.keyed(directory + "/cgroup.events")["frozen"] == 1
        case nil: return nil
        }
    }

    /// Freezes or thaws, and returns once the kernel reports it done. A freeze that does not
    /// complete within `timeoutNanoseconds` is thawed back and reported.
    public static func set(_ frozen: Bool, directories: [String]) throws(CgroupError) {
        guard let control = control(directories) else { throw CgroupError("no freezer among \(directories.joined(separator: ", "))") }
        try request(frozen, control)
        let deadline = Clock.monotonicNanoseconds() + timeoutNanoseconds
        while isFrozen(directories) != frozen {
            guard Clock.monotonicNanoseconds() < deadline else {
                if frozen { try? request(false, control) }
                throw CgroupError("the cgroup did not \(frozen ? "freeze" : "thaw") within \(timeoutNanoseconds / 1_000_000_000) s")
            }
            usleep(1_000)
        }
    }

    static func request(_ frozen: Bool, _ control: Control) throws(CgroupError) {
        switch control {
        case .v1(let directory): try CgroupFile.write(directory + "/freezer.state", frozen ? "FROZEN" : "THAWED")
        case .v2(let directory): try CgroupFile.write(directory + "/cgroup.freeze", frozen ? "1" : "0")
        }
    }
}
