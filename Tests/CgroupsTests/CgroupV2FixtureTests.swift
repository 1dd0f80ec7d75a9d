import Cgroups
import Glibc
import HostOS
import Testing

/// The v2 manager against a directory that stands in for /sys/fs/cgroup (most users run pure v2;
/// this host is hybrid, so the real-cgroup tests exercise v1).
@Suite("cgroup v2 manager on a fixture directory")
struct CgroupV2FixtureTests {
    static func fixture() throws -> String {
        var template = Array("/tmp/tandem-cgroup2.XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        try Files.write(root + "/cgroup.controllers", Array("cpuset cpu io memory hugetlb pids rdma misc\n".utf8))
        try Files.write(root + "/cgroup.subtree_control", Array("\n".utf8))
        return root
    }

    static func read(_ path: String) -> String? { Files.readText(path).map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 } }

    @Test("limits land in the v2 files with v2 syntax, controllers are enabled down the path")
    func limits() throws {
        let root = try Self.fixture()
        defer { _ = Subprocess.runQuietly("/bin/rm", ["-rf", root]) }
        let manager = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "c1", fixture: true)
        #expect(manager.version == .v2)
        #expect(manager.directories == [root + "/tandem", root + "/tandem/c1"])
        #expect(manager.processFiles == [root + "/tandem/c1/cgroup.procs"])
        var limits = CgroupLimits()
        limits.memoryBytes = 32 << 20
        limits.memoryAndSwapBytes = 64 << 20
        limits.cpuQuotaMicroseconds = 20_000
        limits.cpuWeight = 50
        limits.pids = 16
        try manager.apply(limits)
        let leaf = root + "/tandem/c1"
        #expect(Self.read(leaf + "/memory.max") == "33554432")
        #expect(Self.read(leaf + "/memory.swap.max") == "33554432")
        #expect(Self.read(leaf + "/cpu.max") == "20000 100000")
        #expect(Self.read(leaf + "/cpu.weight") == "50")
        #expect(Self.read(leaf + "/pids.max") == "16")
        #expect(Self.read(root + "/cgroup.subtree_control") == "cpu memory pids")
        #expect(Self.read(root + "/tandem/cgroup.subtree_control") == "cpu memory pids")
        try manager.add(pid: 4242)
        #expect(Self.read(leaf + "/cgroup.procs") == "4242")
        // The kernel's files, as a cgroup2 directory has them; the fixture plays the kernel
        // reporting the freeze done (CgroupV2RealMountTests waits for the real one).
        try Files.write(leaf + "/cgroup.freeze", Array("0\n".utf8))
        try Files.write(leaf + "/cgroup.events", Array("populated 1\nfrozen 1\n".utf8))
        try manager.freeze(true)
        #expect(Self.read(leaf + "/cgroup.freeze") == "1")
        var unlimitedSwap = CgroupLimits()
        unlimitedSwap.memoryBytes = 8 << 20
        unlimitedSwap.memoryAndSwapBytes = .max
        try manager.apply(unlimitedSwap)
        #expect(Self.read(leaf + "/memory.swap.max") == "max")
        try manager.destroy()
        #expect(Files.kind(leaf) == .missing)
        #expect(Files.kind(root + "/tandem") == .missing)
        #expect(Files.kind(root + "/cgroup.controllers") == .regular, "the fixture root itself is left alone")
    }

    @Test("statistics are read from memory.peak, cpu.stat and memory.events")
    func statistics() throws {
        let root = try Self.fixture()
        defer { _ = Subprocess.runQuietly("/bin/rm", ["-rf", root]) }
        let manager = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "c2", fixture: true)
        let leaf = root + "/tandem/c2"
        try Files.write(leaf + "/memory.peak", Array("7340032\n".utf8))
        try Files.write(leaf + "/cpu.stat", Array("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 2500\n".utf8))
        try Files.write(leaf + "/memory.events", Array("low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n".utf8))
        let stats = manager.statistics()
        #expect(stats.memoryPeakBytes == 7_340_032)
        #expect(stats.cpuNanoseconds == 1_500_000)
        #expect(stats.throttledPeriods == 4)
        #expect(stats.throttledNanoseconds == 2_500_000)
        #expect(stats.oomKills == 1)
        try manager.destroy()
    }

    @Test("a second container with the same name is refused, naming the cgroup")
    func collision() throws {
        let root = try Self.fixture()
        defer { _ = Subprocess.runQuietly("/bin/rm", ["-rf", root]) }
        let first = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "same", fixture: true)
        #expect(throws: CgroupError.self) { try CgroupLayout.v2(root: root).create(parent: "tandem", name: "same", fixture: true) }
        do { _ = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "same", fixture: true) } catch {
            #expect(error.description == "cgroup \(root)/tandem/same already exists (another container's?)")
        }
        try first.destroy()
    }
}

@Suite("cgroup layout of this host")
struct CgroupLayoutTests {
    @Test("detect() finds v2 or the v1 controllers Tandem needs")
    func detect() throws {
        let layout = try #require(CgroupLayout.detect())
        switch layout {
        case .v2(let root): #expect(root == "/sys/fs/cgroup")
        case .v1(let controllers): #expect(controllers["memory"] != nil && controllers["pids"] != nil)
        }
    }
}
