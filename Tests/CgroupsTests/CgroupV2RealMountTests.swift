import Cgroups
import Glibc
import HostOS
import Testing

/// The v2 manager on a real cgroup2 mount: the unified hierarchy of a pure v2 host, or the
/// controller-less /sys/fs/cgroup/unified of a hybrid one like this host's. What every cgroup2
/// directory has without controllers is the kernel's, not a fixture's: cgroup.procs, cgroup.freeze
/// with cgroup.events, cgroup.kill, cpu.stat. (Limits need controllers this host cannot enable:
/// their files are checked on the fixture, CgroupV2FixtureTests.)
enum RealCgroupTwo {
    static let root: String? = {
        guard getuid() == 0 else { return nil }
        for path in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] where Files.filesystemMagic(path) == 0x6367_7270 {
            return path
        }
        return nil
    }()
}

@Suite("cgroup v2 manager on this host's real cgroup2 mount", .enabled(if: RealCgroupTwo.root != nil, "needs root and a cgroup2 mount"), .serialized)
struct CgroupV2RealMountTests {
    /// `sleep 60` as a child of this test process.
    static func sleeper() throws -> pid_t {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ["/bin/sleep", "60"].map { (text: String) in strdup(text) } + [nil]
        defer { argv.forEach { free($0) } }
        #expect(posix_spawn(&pid, "/bin/sleep", nil, nil, argv, environ) == 0)
        return pid
    }

    /// /proc/PID/cgroup's v2 line ("0::/path").
    static func unifiedPath(_ pid: pid_t) -> String? {
        Files.readText("/proc/\(pid)/cgroup")?.split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
    }

    static func events(_ directory: String) -> [String: String] {
        var values: [String: String] = [:]
        for line in (Files.readText(directory + "/cgroup.events") ?? "").split(separator: "\n") {
            let pair = line.split(separator: " ")
            if pair.count == 2 { values[String(pair[0])] = String(pair[1]) }
        }
        return values
    }

    @Test("create, add a process, freeze until the kernel says frozen, thaw, cpu.stat, kill through cgroup.kill, destroy")
    func lifecycle() throws {
        let root = try #require(RealCgroupTwo.root)
        let parent = "tandem-test-\(getpid())"
        let manager = try CgroupLayout.v2(root: root).create(parent: parent, name: "c1")
        let leaf = "\(root)/\(parent)/c1"
        #expect(Files.kind(leaf) == .directory)
        let pid = try Self.sleeper()
        var reaped = false
        defer {
            if !reaped { kill(pid, SIGKILL); var status: Int32 = 0; waitpid(pid, &status, 0) }
            try? manager.destroy()
        }
        try manager.add(pid: pid)
        #expect(Self.unifiedPath(pid)?.hasSuffix("/\(parent)/c1") == true, "the kernel moved it")
        #expect(manager.processes() == [pid])

        try manager.freeze(true)
        var frozen = false
        for _ in 0..<100 where !frozen {
            frozen = Self.events(leaf)["frozen"] == "1"
            if !frozen { usleep(10_000) }
        }
        #expect(frozen, "cgroup.events says frozen within a second")
        try manager.freeze(false)
        usleep(50_000)
        #expect(Self.events(leaf)["frozen"] == "0")

        #expect(manager.statistics().cpuNanoseconds != nil, "cpu.stat's usage_usec is read from the real file")

        manager.killAll()
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        reaped = true
        #expect((status & 0x7f) == SIGKILL, "the process died of SIGKILL")
        try manager.destroy()
        #expect(Files.kind(leaf) == .missing)
        #expect(Files.kind("\(root)/\(parent)") == .missing || ForeignParentLock.held, "the parent Tandem made goes with its last child")
        rmdir("\(root)/\(parent)")
    }
}

/// A runtime writes a cgroup's directories down before it makes them, so that a process killed
/// halfway leaves a record of what to remove: the plan must be exactly what `create` makes.
@Suite("cgroup directories planned before they are made")
struct PlannedDirectoriesTests {
    @Test("v2 (fixture): the plan is the directories create makes")
    func v2() throws {
        let root = try CgroupV2FixtureTests.fixture()
        defer { _ = Subprocess.runQuietly("/bin/rm", ["-rf", root]) }
        let layout = CgroupLayout.v2(root: root)
        let planned = layout.plannedDirectories(parent: "tandem/nested", name: "c1")
        let manager = try layout.create(parent: "tandem/nested", name: "c1")
        #expect(planned == manager.directories)
        try manager.destroy()
    }

    @Test("v1 (this host's hierarchies, with an extra controller): the plan is the directories create makes",
          .enabled(if: getuid() == 0 && { if case .v1 = CgroupLayout.detect() { return true }; return false }(), "needs root and cgroup v1 controllers"))
    func v1() throws {
        let layout = try #require(CgroupLayout.detect())
        let parent = "tandem-plan-test-\(getpid())"
        let planned = layout.plannedDirectories(parent: parent, name: "c1", extra: ["devices"])
        let manager = try layout.create(parent: parent, name: "c1", extra: ["devices"])
        defer {
            try? manager.destroy()
            // (destroy leaves the parents while another test's runc launcher holds the parents' lock.)
            for directory in planned.reversed() { rmdir(directory) }
        }
        #expect(Set(planned) == Set(manager.directories), "planned \(planned) made \(manager.directories)")
        #expect(planned.contains { $0.hasPrefix("/sys/fs/cgroup/devices/") }, "the extra controller is in the plan")
    }
}

/// Whether a launcher of a foreign runtime holds the parents' lock now: Tandem then leaves a
/// parent for that launcher to remove (`CgroupParentLock`), so "the parent goes" cannot hold while
/// other tests run `tandem run --as runc` meanwhile.
enum ForeignParentLock {
    static var held: Bool {
        let fd = open(CgroupParentLock.path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return true }
        flock(fd, LOCK_UN)
        return false
    }
}
