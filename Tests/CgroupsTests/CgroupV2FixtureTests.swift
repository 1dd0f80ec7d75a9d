import Cgroups
import Glibc
import HostOS
import Testing

/// The v2 manager against directories that stand in for /sys/fs/cgroup (most users run pure v2;
/// this host's cgroup2 mount has no controllers to enable, so limits cannot be tried on it). The
/// tests make the control files the kernel would (the manager writes only files that exist) and
/// check the syntax written into them; CgroupV2RealMountTests runs the rest on the real mount.
@Suite("cgroup v2 manager on a fixture directory")
struct CgroupV2FixtureTests {
    /// A stand-in for the unified hierarchy's root: the controllers it offers, none enabled.
    static func fixture() throws -> String {
        var template = Array("/tmp/tandem-cgroup2.XXXXXX".utf8CString)
        let root = String(cString: try #require(mkdtemp(&template)))
        try Files.write(root + "/cgroup.controllers", Array("cpuset cpu io memory hugetlb pids rdma misc\n".utf8))
        try Files.write(root + "/cgroup.subtree_control", Array("\n".utf8))
        return root
    }

    /// A container's cgroup directory as the kernel makes it: its control files, empty.
    static func leaf(in root: String, _ name: String, files: [String: String] = [:]) throws -> String {
        let path = root + "/" + name
        try Files.makeDirectories(path)
        let kernelFiles = ["cgroup.procs", "cgroup.freeze", "cgroup.events", "memory.max", "memory.swap.max", "cpu.max", "cpu.weight",
                           "pids.max", "memory.peak", "cpu.stat", "memory.events"]
        for file in kernelFiles { try Files.write(path + "/" + file, Array((files[file] ?? "").utf8)) }
        return path
    }

    static func read(_ path: String) -> String? { Files.readText(path).map { $0.hasSuffix("\n") ? String($0.dropLast()) : $0 } }

    @Test("limits land in the v2 files with v2 syntax; processes and freezing go to cgroup.procs and cgroup.freeze")
    func limits() throws {
        let root = try Self.fixture()
        defer { Files.removeTree(root) }
        let path = try Self.leaf(in: root, "tandem/c1", files: ["cgroup.events": "populated 1\nfrozen 1\n"])
        let manager = CgroupV2(existing: path)
        #expect(manager.version == .v2)
        #expect(manager.processFiles == [path + "/cgroup.procs"])
        // linux.resources as a config.json gives them (tandem ctr's options become these too).
        var resources = CgroupResources()
        resources.memoryLimit = 32 << 20
        resources.memorySwap = 64 << 20
        resources.cpuQuota = 20_000
        resources.cpuPeriod = 100_000
        resources.cpuShares = 512
        resources.pidsLimit = 16
        try resources.apply(to: manager)
        #expect(Self.read(path + "/memory.max") == "33554432")
        #expect(Self.read(path + "/memory.swap.max") == "33554432", "v2's swap limit is the swap alone (OCI's is memory + swap)")
        #expect(Self.read(path + "/cpu.max") == "20000 100000")
        #expect(Self.read(path + "/cpu.weight") == "20", "runc's shares → weight: 1 + (512 - 2) * 9999 / 262142")
        #expect(Self.read(path + "/pids.max") == "16")
        try manager.add(pid: 4242)
        #expect(Self.read(path + "/cgroup.procs") == "4242")
        try manager.freeze(true)
        #expect(Self.read(path + "/cgroup.freeze") == "1")
        var unlimited = CgroupResources()
        unlimited.memoryLimit = 8 << 20
        unlimited.memorySwap = -1
        unlimited.pidsLimit = -1
        try unlimited.apply(to: manager)
        #expect(Self.read(path + "/memory.swap.max") == "max")
        #expect(Self.read(path + "/pids.max") == "max")
    }

    @Test("a control file the kernel did not make is an error naming it, not a file created")
    func missingControlFile() throws {
        let root = try Self.fixture()
        defer { Files.removeTree(root) }
        let path = root + "/tandem/bare"
        try Files.makeDirectories(path)
        var resources = CgroupResources()
        resources.pidsLimit = 4
        let error = #expect(throws: CgroupError.self) { try resources.apply(to: CgroupV2(existing: path)) }
        #expect(error?.description.contains("linux.resources.pids.limit") == true, "\(String(describing: error))")
        #expect(Files.kind(path + "/pids.max") == .missing)
    }

    @Test("create enables the controllers in the parent with +name syntax, makes the levels, and destroy removes them")
    func create() throws {
        let root = try Self.fixture()
        defer { Files.removeTree(root) }
        let manager = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "c1")
        #expect(manager.directories == [root + "/tandem", root + "/tandem/c1"])
        #expect(Self.read(root + "/cgroup.subtree_control") == "+cpu +memory +pids")
        #expect(Files.kind(root + "/tandem/c1") == .directory)
        try manager.destroy()
        #expect(Files.kind(root + "/tandem/c1") == .missing)
        #expect(Files.kind(root + "/tandem") == .missing || ForeignParentLock.held)
        #expect(Files.kind(root + "/cgroup.controllers") == .regular, "the root itself is left alone")
    }

    @Test("statistics are read from memory.peak, cpu.stat and memory.events")
    func statistics() throws {
        let root = try Self.fixture()
        defer { Files.removeTree(root) }
        let path = try Self.leaf(in: root, "tandem/c2", files: [
            "memory.peak": "7340032\n",
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\nthrottled_usec 2500\n",
            "memory.events": "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
        ])
        let stats = CgroupV2(existing: path).statistics()
        #expect(stats.memoryPeakBytes == 7_340_032)
        #expect(stats.cpuNanoseconds == 1_500_000)
        #expect(stats.throttledPeriods == 4)
        #expect(stats.throttledNanoseconds == 2_500_000)
        #expect(stats.oomKills == 1)
    }

    @Test("a second container with the same name is refused, naming the cgroup")
    func collision() throws {
        let root = try Self.fixture()
        defer { Files.removeTree(root) }
        let first = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "same")
        do {
            _ = try CgroupLayout.v2(root: root).create(parent: "tandem", name: "same")
            Issue.record("a second cgroup with the same name was made")
        } catch {
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
