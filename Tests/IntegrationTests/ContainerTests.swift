import Foundation
import HostOS
import Testing

/// Real containers on this host: namespaces, pivot_root, overlay, cgroups (v1 here — the hybrid
/// layout; v2 is covered by the fixture tests in CgroupsTests), with a check after each run that
/// nothing is left: no cgroup directory, no mount, no state.
enum Containers {
    static let rootfs = Tandem.repository.appendingPathComponent("guest-images/build/image/rootfs").path
    static let available = getuid() == 0 && FileManager.default.fileExists(atPath: rootfs + "/init")

    /// A private state directory per test, so parallel tests never see each other's containers.
    static func stateRoot() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-ctr-test-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// `tandem ctr run --state-root S --report R ARGS`; returns the result and the report.
    static func run(_ arguments: [String], state: String) throws -> (result: Tandem.Result, report: [String: Any]) {
        let reportPath = state + "/report-\(UUID().uuidString.prefix(8)).json"
        let result = try Tandem.run(["ctr", "run", "--state-root", state, "--report", reportPath] + arguments)
        let report = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath)))) as? [String: Any] ?? [:]
        return (result, report)
    }

    /// Nothing of container `id` is left: cgroup directories, mounts, state.
    static func expectNoLeftovers(_ id: String, state: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies + [""] {
            let path = "/sys/fs/cgroup/\(hierarchy)/tandem/\(id)"
            #expect(!FileManager.default.fileExists(atPath: path), "cgroup left: \(path)", sourceLocation: sourceLocation)
        }
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(id), "a mount of \(id) is left", sourceLocation: sourceLocation)
        #expect(!FileManager.default.fileExists(atPath: "\(state)/\(id)"), "state of \(id) is left", sourceLocation: sourceLocation)
    }

    static func cleanUp(_ state: String) { try? FileManager.default.removeItem(atPath: state) }

    /// `tandem ctr SUBCOMMAND --state-root S ARGS`.
    static func ctr(_ arguments: [String], state: String) throws -> Tandem.Result {
        try Tandem.run(["ctr", arguments[0], "--state-root", state] + arguments.dropFirst())
    }
}

@Suite("tandem ctr run: isolation, on real namespaces", .enabled(if: Containers.available, "needs root and the image rootfs (make image)"))
struct ContainerIsolationTests {
    @Test("PID 1 inside, no host PIDs visible, its own hostname; the host's is unchanged")
    func pidsAndHostname() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let host = ProcessInfo.processInfo.hostName
        let (result, report) = try Containers.run(["--hostname", "box", "--", "/bin/sh", "-c",
                                                   "echo pid=$$; hostname; ls /proc | grep '^[0-9]' | sort -n | tail -1"], state: state)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "pid=1")
        #expect(lines.dropFirst().first == "box")
        // sh (1) and its pipeline's children only: the highest pid inside is tiny, no host pid shows.
        #expect(Int(lines.last ?? "") ?? 99 <= 10, "highest pid visible inside: \(lines.last ?? "")")
        #expect(ProcessInfo.processInfo.hostName == host)
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
    }

    @Test("--net loopback has only lo, up; --net none has lo down")
    func network() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let loopback = try Containers.run(["--", "/bin/cat", "/proc/net/dev"], state: state)
        let interfaces = loopback.result.stdout.split(separator: "\n").dropFirst(2).map { $0.split(separator: ":")[0].trimmingCharacters(in: .whitespaces) }
        #expect(interfaces == ["lo"])
        let up = try Containers.run(["--", "/bin/ip", "link"], state: state)
        #expect(up.result.stdout.contains("LOOPBACK,UP"))
        let none = try Containers.run(["--net", "none", "--", "/bin/ip", "link"], state: state)
        #expect(none.result.stdout.contains("<LOOPBACK>") && !none.result.stdout.contains("UP,"))
    }

    @Test("boot_id inside equals the host's: one kernel (a VM has its own)")
    func bootID() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, _) = try Containers.run(["--", "/bin/cat", "/proc/sys/kernel/random/boot_id"], state: state)
        let host = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
        #expect(result.stdout == host)
    }

    @Test("--workload hello runs tandem-init's built-in workload, as in the VM")
    func hello() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, _) = try Containers.run(["--workload", "hello"], state: state)
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("TANDEM-READY\nhello from tandem-init\nTANDEM-RESULT workload=hello status=0"))
    }

    @Test("capabilities are the OCI default set; no_new_privs is on")
    func capabilities() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, _) = try Containers.run(["--", "/bin/grep", "-E", "CapEff|CapBnd|NoNewPrivs", "/proc/self/status"], state: state)
        #expect(result.stdout.contains("CapEff:\t00000000a80425fb"))
        #expect(result.stdout.contains("CapBnd:\t00000000a80425fb"))
        #expect(result.stdout.contains("NoNewPrivs:\t1"))
    }

    @Test("--userns maps root inside to host uid 100000")
    func userNamespace() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, report) = try Containers.run(["--userns", "--", "/bin/sh", "-c", "id -u; cat /proc/self/uid_map; touch /made && echo wrote"], state: state)
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines == ["0", "0 100000 65536", "wrote"])
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
    }

    @Test("--userns: the image's files are root's inside, and root can write them (a copy with shifted owners, made once)")
    func userNamespaceWritableRoot() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let script = "echo x > /tmp/f && mkdir /root/d && echo changed >> /etc/hostname-test; stat -c '%u:%g' /bin/busybox /root; echo done"
        let (first, report) = try Containers.run(["--userns", "--", "/bin/sh", "-c", script], state: state)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout == "0:0\n0:0\ndone\n", "files owned by root inside (host 100000): \(first.stdout)")
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
        // The copy is kept and reused: the second container does not make it again.
        let images = state + "/.images"
        let copies = try FileManager.default.contentsOfDirectory(atPath: images).filter { !$0.hasSuffix(".stamp") }
        #expect(copies.count == 1)
        let inode = try FileManager.default.attributesOfItem(atPath: images + "/" + copies[0])[.systemFileNumber] as? UInt64
        let (second, _) = try Containers.run(["--userns", "--", "/bin/sh", "-c", "test -e /tmp/f || echo fresh"], state: state)
        #expect(second.stdout == "fresh\n", "each container still has its own upper layer")
        #expect(try FileManager.default.attributesOfItem(atPath: images + "/" + copies[0])[.systemFileNumber] as? UInt64 == inode)
        // Host side: the copy's owners are shifted, and the image itself is untouched.
        #expect(try FileManager.default.attributesOfItem(atPath: images + "/" + copies[0] + "/bin/busybox")[.ownerAccountID] as? UInt == 100_000)
        #expect(try FileManager.default.attributesOfItem(atPath: Containers.rootfs + "/bin/busybox")[.ownerAccountID] as? UInt == 0)
    }

    @Test("--userns: an image that changes gets a new copy (and the new file is what the container sees)")
    func userNamespaceImageChanges() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let image = state + "/image"
        #expect(Subprocess.runQuietly("/bin/cp", ["-a", Containers.rootfs, image]) == 0)
        let first = try Containers.run(["--userns", "--image", image, "--", "/bin/cat", "/etc/tandem-version"], state: state).result
        #expect(first.status != 0, "no such file yet")
        try Data("v2\n".utf8).write(to: URL(fileURLWithPath: image + "/etc/tandem-version"))
        let second = try Containers.run(["--userns", "--image", image, "--", "/bin/cat", "/etc/tandem-version"], state: state).result
        #expect(second.status == 0 && second.stdout == "v2\n", "the copy was made again: \(second.stderr)")
        // Same size, same inode, the mtime put back (as a reproducible build pins it): only the ctime moves.
        let file = image + "/etc/tandem-version"
        #expect(Subprocess.runQuietly("/bin/cp", ["-p", file, state + "/mtime-reference"]) == 0)
        let fd = open(file, O_WRONLY)  // in place: the inode stays (Data.write may replace the file)
        #expect(fd >= 0 && write(fd, "v3\n", 3) == 3)
        close(fd)
        #expect(Subprocess.runQuietly("/usr/bin/touch", ["-m", "-r", state + "/mtime-reference", file]) == 0, "the mtime to the nanosecond")
        let third = try Containers.run(["--userns", "--image", image, "--", "/bin/cat", "/etc/tandem-version"], state: state).result
        #expect(third.stdout == "v3\n", "a same-size change is seen too")
    }

    @Test("--read-only refuses writes to the root; volumes bind, :ro refuses writes")
    func readOnlyAndVolumes() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let readOnly = try Containers.run(["--read-only", "--", "/bin/sh", "-c", "touch /x"], state: state)
        #expect(readOnly.result.status != 0)
        #expect(readOnly.result.stderr.contains("Read-only file system"))
        let volume = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-vol-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: volume, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: volume) }
        try "from the host\n".write(toFile: volume + "/in", atomically: true, encoding: .utf8)
        let rw = try Containers.run(["-v", "\(volume):/data", "--", "/bin/sh", "-c", "cat /data/in; echo back > /data/out"], state: state)
        #expect(rw.result.stdout == "from the host\n")
        #expect((try? String(contentsOfFile: volume + "/out", encoding: .utf8)) == "back\n")
        let ro = try Containers.run(["-v", "\(volume):/data:ro", "--", "/bin/sh", "-c", "echo x > /data/other"], state: state)
        #expect(ro.result.status != 0 && !FileManager.default.fileExists(atPath: volume + "/other"))
    }

    @Test("two containers from one image share the lower layer and do not see each other's writes")
    func layers() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let first = try Tandem.run(["ctr", "run", "-d", "--state-root", state, "--name", "writer", "--",
                                    "/bin/sh", "-c", "echo mine > /written; grep -o 'lowerdir=[^,]*' /proc/self/mountinfo | head -1; sleep 30"])
        #expect(first.status == 0, "\(first.stderr)")
        defer { _ = try? Tandem.run(["ctr", "rm", "-f", "--state-root", state, "writer"]) }
        Thread.sleep(forTimeInterval: 0.3)
        let second = try Containers.run(["--", "/bin/sh", "-c", "cat /written 2>/dev/null || echo absent; grep -o 'lowerdir=[^,]*' /proc/self/mountinfo | head -1"], state: state)
        let lines = second.result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "absent")
        #expect(lines.last == "lowerdir=\(Containers.rootfs)")
        let log = try String(contentsOfFile: "\(state)/\(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines))/log", encoding: .utf8)
        #expect(log.contains("lowerdir=\(Containers.rootfs)"))
        #expect(!FileManager.default.fileExists(atPath: Containers.rootfs + "/written"), "the shared image stays untouched")
    }
}

@Suite("tandem ctr run: cgroup limits, on real cgroups", .enabled(if: Containers.available, "needs root and the image rootfs (make image)"))
struct ContainerLimitTests {
    @Test("a memory hog under --memory 32M is OOM-killed and reported as such")
    func oom() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, report) = try Containers.run(["--memory", "32M", "--", "/bin/sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived"], state: state)
        #expect(result.status == 137)
        #expect(result.stderr.contains("tandem: container killed: out of memory (limit 32 MiB)"), "\(result.stderr)")
        #expect(report["oom_killed"] as? Bool == true)
        #expect(!result.stdout.contains("survived"))
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
    }

    @Test("a fork bomb under --pids 16 is contained")
    func pids() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, report) = try Containers.run(["--pids", "16", "--", "/bin/sh", "-c", "for i in $(seq 40); do sleep 1 & done; wait"], state: state)
        #expect(result.stderr.contains("can't fork"), "\(result.stderr)")
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
    }

    @Test("--cpus 0.2 throttles a busy loop (cgroup cpu.stat)")
    func cpus() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, report) = try Containers.run(["--cpus", "0.2", "--", "/bin/sh", "-c", "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done"], state: state)
        #expect(result.status == 0)
        let throttled = try #require(report["throttled_periods"] as? Int)
        #expect(throttled > 0)
        let cpu = Double(report["cpu_ns"] as? Int ?? 0)
        let phases = try #require(report["phases_ms"] as? [String: Any])
        let wall = ((phases["exited"] as? Double ?? 0) - (phases["started"] as? Double ?? 0)) * 1e6
        #expect(cpu / wall < 0.35, "used \(cpu / wall) of a CPU under a 0.2 CPU limit")
    }
}

@Suite("tandem ctr: detached lifecycle", .enabled(if: Containers.available, "needs root and the image rootfs (make image)"))
struct ContainerLifecycleTests {
    @Test("a name in use is refused until that container is removed; a name Docker would refuse is refused")
    func uniqueNames() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        func ctr(_ arguments: [String]) throws -> Tandem.Result { try Containers.ctr(arguments, state: state) }
        let first = try ctr(["run", "-d", "--name", "dup", "--", "/bin/sleep", "60"])
        #expect(first.status == 0, "\(first.stderr)")
        let second = try ctr(["run", "-d", "--name", "dup", "--", "/bin/sleep", "60"])
        #expect(second.status == 125 && second.stderr.contains("the name dup is in use"), "\(second.stderr)")
        let foreground = try ctr(["run", "--name", "dup", "--", "/bin/true"])
        #expect(foreground.status == 125, "the foreground front end checks too")
        #expect(try ctr(["ps"]).stdout.split(separator: "\n").count == 2, "one container, and the header")
        #expect(try ctr(["rm", "-f", "dup"]).status == 0)
        let again = try ctr(["run", "--name", "dup", "--", "/bin/true"])
        #expect(again.status == 0, "the name is free once its container is removed: \(again.stderr)")
        let bad = try ctr(["run", "--name", "../x", "--", "/bin/true"])
        #expect(bad.status == 125 && bad.stderr.contains("--name ../x: must be"), "\(bad.stderr)")
    }

    @Test("logs -f follows a detached container's output to its end; inspect gives its times, exit, limits and mounts")
    func logsAndInspect() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        func ctr(_ arguments: [String]) throws -> Tandem.Result { try Containers.ctr(arguments, state: state) }
        let started = try ctr(["run", "-d", "--name", "lg", "--memory", "64M", "-v", state + ":/host:ro", "--",
                               "/bin/sh", "-c", "echo one; sleep 0.5; echo two >&2; exit 4"])
        #expect(started.status == 0, "\(started.stderr)")
        let logs = try ctr(["logs", "-f", "lg"])
        #expect(logs.status == 0)
        #expect(logs.stdout == "one\ntwo\n", "both streams, in order, to the end: \(logs.stdout)")
        let inspect = try ctr(["inspect", "lg"])
        let objects = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]])
        let object = try #require(objects.first)
        #expect(object["schema"] as? String == "tandem.ctr-inspect/1" && object["name"] as? String == "lg")
        let info = try #require(object["state"] as? [String: Any])
        #expect(info["exit_status"] as? Int == 4 && info["running"] as? Bool == false)
        for time in ["created", "started", "finished"] { #expect((info[time] as? String)?.hasSuffix("Z") == true, "\(time)") }
        #expect((info["created"] as? String ?? "") <= (info["started"] as? String ?? "") && (info["started"] as? String ?? "") < (info["finished"] as? String ?? ""))
        #expect((object["limits"] as? [String: Any])?["memory_bytes"] as? String == "67108864")
        #expect(object["volumes"] as? [String] == [state + ":/host:ro"])
        #expect(try ctr(["logs", "nope"]).status == 125)
        #expect(try ctr(["rm", "lg"]).status == 0)
    }

    @Test("--report into a missing directory is refused before anything runs")
    func reportDirectory() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let marker = state + "/ran"
        let result = try Tandem.run(["ctr", "run", "--state-root", state, "--report", "/nonexistent/x.json", "-v", state + ":/out",
                                     "--", "/bin/touch", "/out/ran"])
        #expect(result.status == 125 && result.stderr.contains("--report /nonexistent/x.json"), "\(result.stderr)")
        #expect(!FileManager.default.fileExists(atPath: marker), "the container did not run")
    }

    @Test("Ctrl-C to a foreground run whose PID 1 ignores it: the container is killed and the status is 130 (128+N), not 137")
    func signalStatus() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let result = try Tandem.run(["ctr", "run", "--state-root", state, "--", "/bin/sh", "-c", "trap '' INT TERM; echo up; sleep 30"],
                                    interruptAfter: 1)
        #expect(result.status == 130, "\(result.stderr)")
        #expect(result.stderr.contains("stopped by signal 2"))
    }

    @Test("run -d prints an id; ps, top (host and container PIDs), exec, pause/resume, stop, rm; nothing left")
    func lifecycle() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        func ctr(_ arguments: [String]) throws -> Tandem.Result { try Containers.ctr(arguments, state: state) }
        let started = try Tandem.run(["ctr", "run", "-d", "--state-root", state, "--name", "svc", "--", "/bin/sh", "-c", "sleep 60 & sleep 60"])
        #expect(started.status == 0, "\(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.count == 64)
        let ps = try ctr(["ps"])
        #expect(ps.stdout.contains(String(id.prefix(12))) && ps.stdout.contains("svc") && ps.stdout.contains("running"), "\(ps.stdout)")
        let top = try ctr(["top", "svc"])
        let rows = top.stdout.split(separator: "\n").dropFirst(2).map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        #expect(rows.count == 2, "\(top.stdout)")
        #expect(rows.map { $0[1] }.sorted() == ["1", "2"], "container PIDs")
        #expect(rows.allSatisfy { Int($0[0]) ?? 0 > 2 }, "host PIDs")
        let exec = try ctr(["exec", String(id.prefix(8)), "--", "/bin/sh", "-c", "echo $$; hostname; exit 3"])
        #expect(exec.status == 3)
        #expect(exec.stdout == "3\n\(id.prefix(12))\n")
        #expect(try ctr(["pause", "svc"]).status == 0)
        #expect(try ctr(["ps"]).stdout.contains("paused"), "ps says paused once the freezer reports it")
        let frozenExec = try ctr(["exec", "svc", "--", "/bin/true"])
        #expect(frozenExec.status == 125 && frozenExec.stderr.contains("is paused"), "exec into a paused container is refused, not left hanging")
        #expect(try ctr(["pause", "svc"]).stderr.contains("already paused"))
        #expect(try ctr(["resume", "svc"]).status == 0)
        #expect(try ctr(["ps"]).stdout.contains("running"))
        let rmRunning = try ctr(["rm", "svc"])
        #expect(rmRunning.status == 125 && rmRunning.stderr.contains("is running: stop it first"))
        let stop = try ctr(["stop", "-t", "0.5", "svc"])
        #expect(stop.status == 0)
        #expect(try ctr(["ps"]).stdout.contains("exited (137)"))
        #expect(try ctr(["rm", "svc"]).status == 0)
        #expect(try ctr(["ps"]).stdout.split(separator: "\n").count == 1)
        Containers.expectNoLeftovers(id, state: state)
    }

    @Test("a directory a killed tandem left before its first state goes with the next run; one still held (a create in progress) stays")
    func abandonedDirectory() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let abandoned = state + "/" + String(repeating: "a", count: 64)
        let held = state + "/" + String(repeating: "b", count: 64)
        let foreign = state + "/not-a-container"
        for directory in [abandoned, held, foreign] { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        // The creator of `held` is alive: it holds the directory as a live tandem does.
        let fd = open(held, O_RDONLY | O_DIRECTORY)
        defer { close(fd) }
        #expect(flock(fd, LOCK_SH) == 0)
        let run = try Tandem.run(["ctr", "run", "--state-root", state, "--", "/bin/true"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: abandoned), "swept at once (no minute's wait)")
        #expect(FileManager.default.fileExists(atPath: held), "a create in progress is not swept")
        #expect(FileManager.default.fileExists(atPath: foreign), "a directory that is no ctr id is never touched")
    }

    @Test("a tandem SIGKILLed while its container runs leaves nothing after rm")
    func killedMonitor() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["ctr", "run", "--state-root", state, "--name", "orphan", "--", "/bin/sleep", "60"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var ps = ""
        for _ in 0..<100 {
            ps = try Tandem.run(["ctr", "ps", "--state-root", state]).stdout
            if ps.contains("running") { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let dead = try Tandem.run(["ctr", "ps", "--state-root", state, "--json"])
        let entries = try #require(try JSONSerialization.jsonObject(with: Data(dead.stdout.utf8)) as? [[String: Any]])
        let id = try #require(entries.first?["id"] as? String)
        #expect((entries.first?["status"] as? String ?? "").hasPrefix("dead"))
        let pid = entries.first?["pid"] as? Int ?? 0
        #expect(try Tandem.run(["ctr", "rm", "--state-root", state, "orphan"]).status == 0)
        // Gone, or a zombie waiting for this sandbox's PID 1 to reap it (its parent was killed).
        var processState = "?"
        for _ in 0..<40 {
            processState = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: ")").last?.split(separator: " ").first.map(String.init) ?? "gone"
            if processState == "gone" || processState == "Z" { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(processState == "gone" || processState == "Z", "the orphaned container process is \(processState)")
        Containers.expectNoLeftovers(id, state: state)
    }
}

@Suite("tandem ctr run: bad input", .enabled(if: Containers.available, "needs root and the image rootfs (make image)"))
struct ContainerInputTests {
    @Test("each bad input: one clear line, status 125, nothing left")
    func errors() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-empty-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let cases: [([String], String)] = [
            (["--rootfs", "/no/such/root", "--", "/bin/true"], "--rootfs /no/such/root: does not exist"),
            (["--rootfs", empty, "--", "/bin/true"], "--rootfs \(empty) has no executable /bin/true"),
            (["--", "nosuchprogram"], "--image \(Containers.rootfs) has no executable nosuchprogram on PATH"),
            (["--memory", "lots", "--", "/bin/true"], "--memory lots: not a size (like 6m, 512M, 1g)"),
            (["--memory", "1k", "--", "/bin/true"], "--memory 1k: below the minimum of 6 MiB"),
            (["--cpus", "0", "--", "/bin/true"], "--cpus 0: must be a number from 0.01 to this host's"),
            (["--pids", "0", "--", "/bin/true"], "--pids 0: must be a whole number, at least 1"),
            (["--workload", "nope"], "--workload nope: \(Containers.rootfs) has no /bin/nope"),
            (["-v", "/no/such/dir:/data", "--", "/bin/true"], "--volume /no/such/dir:/data: /no/such/dir does not exist"),
            (["--net", "hostile", "--", "/bin/true"], "--net hostile: must be none, loopback, bridge or host"),
        ]
        for (arguments, message) in cases {
            let result = try Tandem.run(["ctr", "run", "--state-root", state] + arguments)
            #expect(result.status == 125, "\(arguments)")
            #expect(result.stderr.hasPrefix("tandem: error: \(message)"), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1)
        }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: state + "/containers")) ?? []).isEmpty)
    }
}
