import Foundation
import Testing

/// Users' images: imported with `tandem image import`, run with `tandem run IMAGE`, the image
/// config honoured as Docker honours it, nothing left behind.
@Suite("tandem run IMAGE: a user's image as a container", .enabled(if: getuid() == 0, "needs root (layers with owners, overlay, namespaces)"))
struct ImageRunTests {
    /// A store with the sample image imported, and a state directory; both removed after.
    final class Setup: @unchecked Sendable {
        let directory: URL
        var store: String { directory.appendingPathComponent("store").path }
        let state = Containers.stateRoot()
        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-run-\(UUID().uuidString.prefix(8))")
            _ = try SampleImage.layout(at: directory.appendingPathComponent("layout"), second: "sample:2")
            let imported = try Tandem.run(["image", "import", "--store", store, directory.appendingPathComponent("layout").path + ":sample:1"])
            precondition(imported.status == 0, imported.stderr)
        }
        deinit {
            try? FileManager.default.removeItem(at: directory)
            Containers.cleanUp(state)
        }
        func run(_ arguments: [String]) throws -> Tandem.Result {
            try Tandem.run(["run"] + [arguments[0], "--store", store, "--state-root", state] + arguments.dropFirst())
        }
    }

    @Test("Entrypoint + Cmd by default; -- replaces Cmd; Env, WorkingDir, User and its groups, HOME; whiteouts and the opaque directory hold")
    func config() throws {
        let setup = try Setup()
        let plain = try setup.run(["sample:1"])
        #expect(plain.status == 0, "\(plain.stderr)")
        #expect(plain.stdout == "default cmd\n")
        let probe = try setup.run(["sample:1", "-e", "EXTRA=1", "--", "id; pwd; echo $FROM_IMAGE $EXTRA $HOME; ls /opaque; ls /gone 2>&1; cat /data/new; cat /data/keep"])
        #expect(probe.status == 0, "\(probe.stderr)")
        let lines = probe.stdout.split(separator: "\n").map(String.init)
        // Supplementary groups: those listing the user (as Docker takes them from libcontainer/user); busybox id prints getgroups().
        #expect(lines.first == "uid=1000(app) gid=1000(app) groups=2000(extra)")
        #expect(lines.dropFirst(1).first == "/data")
        #expect(lines.dropFirst(2).first == "yes 1 /home/app")
        #expect(lines.dropFirst(3).first == "new", "the opaque directory hides the lower layer's files")
        #expect(lines.dropFirst(4).first?.contains("No such file") == true, "the whiteout deletes /gone")
        #expect(Array(lines.dropFirst(5)) == ["layer 2", "kept"])
        let overridden = try setup.run(["sample:1", "-e", "FROM_IMAGE=no", "--", "echo $FROM_IMAGE"])
        #expect(overridden.stdout == "no\n")
    }

    @Test("a run looks its image up and holds it with rm kept out (users.lock): while rm holds that lock, the run waits; then it runs")
    func lookupExcludesRemoval() throws {
        let setup = try Setup()
        // What `image rm` does around its check and unlink, held by another process until told.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = ["--exclusive", setup.store + "/users.lock", "/bin/sh", "-c", "echo held; read line"]
        let holderIn = Pipe(), holderOut = Pipe()
        holder.standardInput = holderIn
        holder.standardOutput = holderOut
        try holder.run()
        _ = holderOut.fileHandleForReading.availableData  // "held"
        let run = Process()
        run.executableURL = URL(fileURLWithPath: Tandem.path)
        run.arguments = ["run", "sample:1", "--store", setup.store, "--state-root", setup.state, "--", "echo ran"]
        let runOut = Pipe()
        run.standardOutput = runOut
        run.standardError = FileHandle.nullDevice
        try run.run()
        Thread.sleep(forTimeInterval: 0.5)
        #expect(run.isRunning, "the run went ahead while rm held users.lock")
        try holderIn.fileHandleForWriting.write(contentsOf: Data("go\n".utf8))
        holder.waitUntilExit()
        run.waitUntilExit()
        #expect(run.terminationStatus == 0)
        #expect(String(decoding: runOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) == "ran\n")
    }

    @Test("a WorkingDir the image lacks is made (root, 0755), as Docker makes it; the store's layers stay as they were")
    func missingWorkingDirectory() throws {
        let setup = try ImageRunTests.Setup()
        var layout = try OCILayoutBuilder(setup.directory.appendingPathComponent("wd"))
        var config = SampleImage.config
        config["WorkingDir"] = "/srv/app/work"
        config["User"] = "app"
        try layout.image([.init(tar: try SampleImage.base().archive)], config: config, name: "wd:1")
        let imported = try Tandem.run(["image", "import", "--store", setup.store, setup.directory.appendingPathComponent("wd").path])
        try #require(imported.status == 0, "\(imported.stderr)")
        let run = try setup.run(["wd:1", "--", "pwd; stat -c '%u %a' .; id -u"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout == "/srv/app/work\n0 755\n1000\n", "\(run.stdout)")
        let layers = try FileManager.default.contentsOfDirectory(atPath: setup.store + "/layers")
        #expect(layers.allSatisfy { !FileManager.default.fileExists(atPath: setup.store + "/layers/\($0)/diff/srv") })
    }

    @Test("writes go to the container's own layer: the store's layers are unchanged; the exit status passes through; nothing is left")
    func isolationAndLeftovers() throws {
        let setup = try Setup()
        let layers = try FileManager.default.contentsOfDirectory(atPath: setup.store + "/layers")
        let before = try layers.flatMap { try FileManager.default.subpathsOfDirectory(atPath: setup.store + "/layers/" + $0) }.sorted()
        let keep = try layers.map { setup.store + "/layers/" + $0 + "/diff/data/keep" }.first { FileManager.default.fileExists(atPath: $0) }.map { try String(contentsOfFile: $0, encoding: .utf8) }
        let write = try setup.run(["sample:1", "--", "echo changed > /data/keep; touch /data/created; cat /data/keep; exit 7"])
        #expect(write.status == 7, "the program's exit status: \(write.stderr)")
        #expect(write.stdout == "changed\n")
        let after = try layers.flatMap { try FileManager.default.subpathsOfDirectory(atPath: setup.store + "/layers/" + $0) }.sorted()
        #expect(after == before)
        #expect(try layers.map { setup.store + "/layers/" + $0 + "/diff/data/keep" }.first { FileManager.default.fileExists(atPath: $0) }.map { try String(contentsOfFile: $0, encoding: .utf8) } == keep)
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.state).filter { !$0.hasPrefix(".") }.isEmpty, "state left")
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains(setup.store), "a mount of the store's layers is left")
    }

    @Test("--report: what the container wrote to its own layer (a scratch tmpfs, or the host upper directory with --userns), measured after it ended; 0 when it wrote nothing")
    func writableLayer() throws {
        let setup = try Setup()
        let busybox = try #require(FileManager.default.attributesOfItem(atPath: "/bin/busybox")[.size] as? Int)
        for (options, command, expectWritten) in [([String](), "cat /bin/busybox > /home/app/copy", true), (["--userns"], "cat /bin/busybox > /home/app/copy", true), ([], "true", false)] {
            let report = setup.directory.appendingPathComponent("report.json").path
            let run = try setup.run(["sample:1", "--report", report] + options + ["--", command])
            try #require(run.status == 0, "\(run.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: report))) as? [String: Any])
            let bytes = try #require(json["writable_layer_bytes"] as? Int, "\(json)")
            if expectWritten {
                #expect(bytes >= busybox && bytes < busybox + 1_000_000, "\(options): \(bytes) bytes for a \(busybox)-byte copy")
            } else {
                #expect(bytes == 0, "wrote nothing, measured \(bytes)")
            }
        }
    }

    @Test("--userns: the layers attached idmapped (no copy): the same files, owners, whiteouts and opaque directory as without; host ids from 100000; writes in the container's own layer; nothing left")
    func userNamespace() throws {
        let setup = try Setup()
        let probe = "id; ls /opaque; ls /gone 2>&1; cat /data/new; stat -c '%u:%g %n' /data/keep /bin/busybox /home/app; echo changed > /data/keep; cat /data/keep; cat /proc/self/uid_map; exit 5"
        let plain = try setup.run(["sample:1", "--", probe])
        let mapped = try setup.run(["sample:1", "--userns", "--", probe])
        #expect(mapped.status == 5, "\(mapped.stderr)")
        let plainLines = plain.stdout.split(separator: "\n").map(String.init), mappedLines = mapped.stdout.split(separator: "\n").map(String.init)
        #expect(Array(mappedLines.dropLast()) == Array(plainLines.dropLast()), "another view of the image with --userns: \(mapped.stdout) vs \(plain.stdout)")
        #expect(mappedLines.contains("1000:1000 /data/keep") && mappedLines.contains("0:0 /bin/busybox"), "owners as the image says: \(mapped.stdout)")
        #expect(mappedLines.contains("new"), "the opaque directory hides the lower layer's file: \(mapped.stdout)")
        let map = mappedLines.last?.split(separator: " ").map(String.init) ?? []
        #expect(map == ["0", "100000", "65536"], "the container's ids start at host 100000: \(mapped.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.state).filter { !$0.hasPrefix(".") }.isEmpty, "state left")
        let keep = try FileManager.default.contentsOfDirectory(atPath: setup.store + "/layers").map { setup.store + "/layers/" + $0 + "/diff/data/keep" }
            .filter { FileManager.default.fileExists(atPath: $0) }
        #expect(try keep.map { try String(contentsOfFile: $0, encoding: .utf8) } == ["kept\n"], "the store's layer was written")
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains(setup.store), "a mount of the store's layers is left")
        // A layer recorded before opaque directories got user.overlay.opaque: refused, named.
        for layer in try FileManager.default.contentsOfDirectory(atPath: setup.store + "/layers") {
            let record = setup.store + "/layers/" + layer + "/layer.json"
            let text = try String(contentsOfFile: record, encoding: .utf8).replacingOccurrences(of: "\"userOverlayXattrs\": true", with: "\"userOverlayXattrs\": false")
            try text.write(toFile: record, atomically: true, encoding: .utf8)
        }
        let old = try setup.run(["sample:1", "--userns", "--", "true"])
        #expect(old.status == 125 && old.stderr.contains("was imported before Tandem marked opaque directories"), "\(old.stderr)")
    }

    @Test("--as crun and --as runc: the same config.json through the peers, the same output and status; no bundle or mount left",
          arguments: ["crun", "runc"])
    func peers(_ runtime: String) throws {
        let setup = try Setup()
        let probe = "id; pwd; echo $FROM_IMAGE $HOME; ls /opaque; cat /data/new; echo changed > /data/keep; exit 7"
        let ours = try setup.run(["sample:1", "--", probe])
        let peer = try setup.run(["sample:1", "--as", runtime, "--", probe])
        #expect(ours.status == 7 && peer.status == 7, "\(runtime): \(peer.stderr)")
        #expect(peer.stdout == ours.stdout, "\(runtime) saw another image")
        #expect(peer.stdout.hasPrefix("uid=1000(app)"), "\(peer.stdout)")
        let bundles = (try? FileManager.default.contentsOfDirectory(atPath: setup.state + "/.bundles")) ?? []
        #expect(bundles.isEmpty, "bundle left: \(bundles)")
        let mounts = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!mounts.contains(setup.state), "a bundle mount reached the host's mount table")
        let detached = try setup.run(["sample:1", "--as", runtime, "-d", "--", "true"])
        #expect(detached.status == 125 && detached.stderr.contains("-d is for --as container only"), "\(detached.stderr)")
        let bridged = try setup.run(["sample:1", "--as", runtime, "--net", "bridge", "--", "true"])
        #expect(bridged.status == 125 && bridged.stderr.contains("--net bridge is for --as container only"), "\(bridged.stderr)")
        let published = try setup.run(["sample:1", "--as", runtime, "--net", "bridge", "-p", "18292:80", "--", "true"])
        #expect(published.status == 125 && published.stderr.contains("--publish is for --as container only"), "\(published.stderr)")
    }

    @Test("--as runc beside Tandem containers that come and go in the same state root: every start of either succeeds (the parent cgroup stays while runc makes its own; a new container's directory is never swept as a killed run's)")
    func peerBesideOurContainers() throws {
        let setup = try Setup()
        // Two loops of tandem ctr run: each end removes the then-empty parent cgroup, which without
        // the parent lock failed about 2 in 100 runc starts ("mkdir …/tandem/ID: no such file").
        let loops = (0..<2).map { _ in
            Background { () -> [String] in
                var failed: [String] = []
                for _ in 0..<80 {
                    let result = try? Containers.ctr(["run", "--", "/bin/true"], state: setup.state)
                    if result?.status != 0 { failed.append(String((result?.stderr ?? "no result").suffix(300))) }
                }
                return failed
            }
        }
        var failures: [String] = []
        for _ in 0..<100 {
            let result = try setup.run(["sample:1", "--as", "runc", "--", "true"])
            if result.status != 0 { failures.append(String(result.stderr.suffix(300))) }
        }
        #expect(failures.isEmpty, "\(failures.count) of 100 runc starts failed: \(failures.first ?? "")")
        // The race is rare (the test above misses it about 1 run in 3): that the run holds the
        // parent lock while runc runs is checked directly too.
        let sleeper = Background { try? setup.run(["sample:1", "--as", "runc", "--", "sleep 2"]) }
        var held = false
        let lock = open("/run/lock/tandem-cgroup-parents.lock", O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        for _ in 0..<150 where !held {
            Thread.sleep(forTimeInterval: 0.01)
            if flock(lock, LOCK_EX | LOCK_NB) == 0 { flock(lock, LOCK_UN) } else { held = true }
        }
        close(lock)
        #expect(held, "tandem run --as runc does not hold the parent cgroup lock while runc runs")
        #expect(sleeper.wait()?.status == 0)
        let ours = loops.flatMap { $0.wait() }
        #expect(ours.isEmpty, "\(ours.count) of 160 tandem ctr runs failed beside runc: \(ours.first ?? "")")
    }

    @Test("bad input: an image not in the store, an unknown option, a backend not there yet — exit 125 (64 for usage), named")
    func refusals() throws {
        let setup = try Setup()
        let cases: [([String], String)] = [
            (["nosuch:1"], "image nosuch:1: not in the store"),
            (["sample:1", "--entrypoint-is-not-an-option"], "entrypoint-is-not-an-option"),
            (["sample:1", "--as", "nonsense"], "run --as nonsense: must be"),
        ]
        for (arguments, expected) in cases {
            let result = try setup.run(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
        // --store means a store image: with ctr run's own roots it is refused, not ignored.
        let store = try Tandem.run(["ctr", "run", "--store", setup.store, "--state-root", setup.state, "--", "/bin/true"])
        #expect(store.status == 125 && store.stderr.contains("--store: for `tandem run IMAGE`"), "\(store.stderr)")
        // An Entrypoint that is not in the image: named by the image.
        let missing = try Tandem.run(["run", "sample:1", "--store", setup.store, "--state-root", setup.state, "--", "x"])
        #expect(missing.status == 0 || missing.status == 127, "sh -c x: the shell's own not-found")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.state).filter { !$0.hasPrefix(".") }.isEmpty)
    }

    @Test("ctr stop sends the image's StopSignal (SIGUSR1 here): a PID 1 that traps it exits 0 at once; SIGTERM would be ignored and end in SIGKILL")
    func stopSignal() throws {
        let setup = try ImageRunTests.Setup()
        let started = try setup.run(["sample:1", "-d", "--", "trap 'exit 0' USR1; while true; do sleep 0.1; done"])
        #expect(started.status == 0, "\(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Tandem.run(["ctr", "rm", "-f", "--state-root", setup.state, id]) }
        Thread.sleep(forTimeInterval: 0.3)  // the trap is set
        let began = Date()
        let stopped = try Tandem.run(["ctr", "stop", "--state-root", setup.state, "--time", "5", id])
        #expect(stopped.status == 0, "\(stopped.stderr)")
        #expect(Date().timeIntervalSince(began) < 4, "stop waited for the grace period: the signal was not the image's")
        let inspect = try Tandem.run(["ctr", "inspect", "--state-root", setup.state, id])
        let json = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [[String: Any]]
        #expect((json?.first?["state"] as? [String: Any])?["exit_status"] as? Int == 0, "\(inspect.stdout)")
    }

    @Test("image rm and prune keep an image a run through a peer uses (runc here), and let it go when the run ends")
    func inUseByPeer() throws {
        let setup = try ImageRunTests.Setup()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["run", "sample:1", "--as", "runc", "--store", setup.store, "--state-root", setup.state, "--", "sleep 3"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 1.5)
        let refused = try Tandem.run(["image", "rm", "--store", setup.store, "sample:1"])
        #expect(refused.status != 0 && refused.stderr.contains("a container or VM runs from it"), "\(refused.stderr)")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let removed = try Tandem.run(["image", "rm", "--store", setup.store, "sample:1"])
        #expect(removed.status == 0, "\(removed.stderr)")
    }

    @Test("image rm refuses an image a detached container runs from; ls, inspect and df show it")
    func inUse() throws {
        let setup = try Setup()
        let list = try Tandem.run(["image", "ls", "--store", setup.store])
        #expect(list.stdout.contains("sample:1"), "\(list.stdout)")
        let inspect = try Tandem.run(["image", "inspect", "--store", setup.store, "sample:1"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any])
        #expect((json["config"] as? [String: Any])?["User"] as? String == "app")
        #expect((json["layers"] as? [Any])?.count == 2)
        let started = try Tandem.run(["run", "sample:1", "-d", "--store", setup.store, "--", "sleep 100"])
        #expect(started.status == 0, "\(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Tandem.run(["ctr", "rm", "-f", id]) }
        let refused = try Tandem.run(["image", "rm", "--store", setup.store, "sample:1"])
        #expect(refused.status != 0 && refused.stderr.contains("a container or VM runs from it"), "\(refused.stderr)")
        _ = try Tandem.run(["ctr", "rm", "-f", id])
        let removed = try Tandem.run(["image", "rm", "--store", setup.store, "sample:1"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(removed.stdout.contains("Deleted layer"), "\(removed.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.store + "/layers").isEmpty)
    }
}

@Suite("tandem image import killed at any point: nothing ls shows, and the next import clears what it left",
       .enabled(if: getuid() == 0, "needs root (layer owners)"))
struct ImageImportKillTests {
    @Test("SIGKILL at 20 moments during an import of 3,000 files")
    func killed() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-kill-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        var tar = TarBuilder()
        for index in 0..<3000 { tar.file("files/\(index / 100)/\(index)", String(repeating: "x", count: index % 700)) }
        var layout = try OCILayoutBuilder(directory.appendingPathComponent("layout"))
        try layout.image([.init(tar: try SampleImage.base().archive), .init(tar: tar.archive)], config: SampleImage.config, name: "big:1")
        let store = directory.appendingPathComponent("store").path
        var moments: [Double] = []
        var interrupted = 0
        for step in 0..<20 {
            let delay = 0.005 + Double(step) * 0.02
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Tandem.path)
            process.arguments = ["image", "import", "--quiet", "--store", store, directory.appendingPathComponent("layout").path]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            if process.terminationReason == .uncaughtSignal { interrupted += 1; moments.append(delay) }
            let list = try Tandem.run(["image", "ls", "--json", "--store", store])
            let images = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [Any] ?? []
            #expect(images.isEmpty || process.terminationReason == .exit, "killed at \(delay) s, ls shows \(images)")
            if !images.isEmpty { _ = try Tandem.run(["image", "rm", "--store", store, "big:1"]) }
        }
        #expect(interrupted >= 5, "the import was killed mid-way only \(interrupted) times (at \(moments))")
        let finished = try Tandem.run(["image", "import", "--quiet", "--store", store, directory.appendingPathComponent("layout").path])
        #expect(finished.status == 0, "\(finished.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: store + "/tmp").isEmpty, "the next import clears tmp/")
        let pruned = try Tandem.run(["image", "prune", "--store", store])
        #expect(pruned.status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").count == 2)
    }
}

/// In the libvirt suite itself (serialized): its tests check that no Tandem domain is left, which
/// a guest of another suite running meanwhile would break.
extension ContainerNetworkTests.LibvirtGuestTests {
    @Test("tandem run IMAGE --as libvirt: the same program, env, working directory, user, whiteouts as in the container; the status passes out; nothing left",
          .enabled(if: getuid() == 0, "needs root (the image's layers are mounted)"))
    func sameAsContainer() throws {
        let setup = try ImageRunTests.Setup()
        let probe = "id; pwd; echo $FROM_IMAGE $HOME; ls /opaque; ls /gone 2>&1; cat /data/new; exit 7"
        let container = try setup.run(["sample:1", "--", probe])
        let vm = try setup.run(["sample:1", "--as", "libvirt", "--", probe])
        #expect(vm.status == 7, "\(vm.stderr.suffix(1500))")
        // The console also carries the kernel's lines: the container's output is there, in order.
        // (The serial console ends lines with \r\n, one Character in Swift: split on scalars.)
        let lines = vm.stdout.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").map(String.init)
        let expected = container.stdout.split(separator: "\n").map(String.init)
        let found = lines.filter { expected.contains($0) }
        #expect(found == expected, "guest console: \(vm.stdout.suffix(1500))")
        #expect(vm.stdout.contains("TANDEM-READY") && vm.stdout.contains("TANDEM-RESULT workload=image status=7"))
        #expect(LibvirtLab.tandemDomains().isEmpty, "a domain is left")
        #expect(LibvirtLab.consoleDirectories().isEmpty, "a console directory is left")
    }

    @Test("Debian's standard kernel (linux-image-amd64): the disk guest's first stage loads what its modules.dep and softdeps say (ext4, crc32c) and boots",
          .enabled(if: StandardKernel.path != nil, "needs Debian's linux-image-amd64 (make deps)"))
    func standardKernelDisk() throws {
        let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--disk", "--kernel", StandardKernel.path!, "--workload", "hello", "--timeout", "200"])
        #expect(result.status == 0, "\(result.stdout.suffix(1500)) \(result.stderr.suffix(500))")
        #expect((result.stdout + result.stderr).contains("hello from tandem-init"))
    }

    @Test("--as libvirt: the image's root disk is made once and shared by later runs, which write only to their own overlay; a missing WorkingDir is made in the guest; rm takes the disk",
          .enabled(if: getuid() == 0, "needs root (the image's layers are mounted)"))
    func sharedRootDisk() throws {
        let setup = try ImageRunTests.Setup()
        var layout = try OCILayoutBuilder(setup.directory.appendingPathComponent("wd"))
        var config = SampleImage.config
        config["WorkingDir"] = "/srv/app/work"
        try layout.image([.init(tar: try SampleImage.base().archive)], config: config, name: "wd:1")
        try #require(try Tandem.run(["image", "import", "--store", setup.store, setup.directory.appendingPathComponent("wd").path]).status == 0)
        let first = try setup.run(["wd:1", "--as", "libvirt", "--", "pwd; stat -c '%u %a' .; id -u; echo written > /data/run-file; ls /data"])
        #expect(first.status == 0, "\(first.stderr.suffix(1500))")
        #expect(first.stderr.contains("root disk made"), "\(first.stderr)")
        let lines = first.stdout.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").map(String.init)
        #expect(lines.contains("/srv/app/work") && lines.contains("0 755") && lines.contains("1000"), "the WorkingDir, made by root 0755; the image's user: \(first.stdout.suffix(800))")
        let disks = try FileManager.default.contentsOfDirectory(atPath: setup.store + "/vm").filter { $0.hasSuffix(".ext4") }
        try #require(disks.count == 1, "\(disks)")
        let disk = setup.store + "/vm/" + disks[0]
        let before = try TestTools.sha256(Data(contentsOf: URL(fileURLWithPath: disk)))
        let second = try setup.run(["wd:1", "--as", "libvirt", "--", "ls /data; cat /data/run-file 2>&1; exit 4"])
        #expect(second.status == 4, "\(second.stderr.suffix(1500))")
        #expect(second.stderr.contains("root disk reused"), "\(second.stderr)")
        #expect(!second.stdout.contains("written"), "the first run's write reached the shared disk: \(second.stdout.suffix(800))")
        #expect(try TestTools.sha256(Data(contentsOf: URL(fileURLWithPath: disk))) == before, "the shared disk changed")
        let removed = try Tandem.run(["image", "rm", "--store", setup.store, "wd:1"])
        #expect(removed.status == 0 && removed.stdout.contains("Deleted VM disk"), "\(removed.stdout) \(removed.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: setup.store + "/vm").isEmpty)
        #expect(LibvirtLab.tandemDomains().isEmpty, "a domain is left")
    }

    @Test("bench --image with libvirt: QEMU's peak RSS is in the libvirt trial's; the footprint has the kernel and the root disk; start, memory and space claims answered",
          .enabled(if: getuid() == 0, "needs root (the image's layers are mounted)"))
    func imageBenchWithLibvirt() throws {
        let setup = try ImageRunTests.Setup()
        let out = setup.directory.appendingPathComponent("report").path
        let result = try Tandem.run(["bench", "--image", "sample:1", "--store", setup.store, "--backends", "container,libvirt",
                                     "--trials", "1", "--warmup", "0", "--ready", "^UP$", "--out", out, "--", "echo UP"])
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any])
        let samples = try #require(json["samples"] as? [[String: Any]])
        let libvirt = try #require(samples.first { $0["backend"] as? String == "libvirt" })
        #expect((libvirt["peakRSSBytes"] as? Int ?? 0) > 100 << 20, "QEMU's resident set (hundreds of MiB) is not in the libvirt trial's: \(libvirt)")
        let footprint = try #require(json["footprint"] as? [[String: Any]]).compactMap { $0["name"] as? String }
        #expect(footprint.contains("guest kernel (bzImage)") && footprint.contains("VM root disk (ext4, from the layers)"), "\(footprint)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any])
        let claims = try #require(summary["claims"] as? [[String: Any]])
        for id in ["start", "memory", "space"] {
            let verdict = claims.first { $0["id"] as? String == id }?["verdict"] as? String
            #expect(verdict != nil && verdict != "not measured here", "\(id): \(String(describing: verdict))")
        }
    }

    @Test("a root disk that cannot be mounted fails the run (125), never falls back to the initramfs")
    func rootNotMounted() throws {
        let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--workload", "hello", "--cmdline", "quiet tandem.root=/dev/vdz", "--timeout", "120"])
        #expect(result.status == 125, "\(result.stdout.suffix(1000)) \(result.stderr.suffix(1000))")
        let console = result.stdout + result.stderr
        #expect(console.contains("the root disk /dev/vdz could not be mounted"))
        #expect(!console.contains("hello from tandem-init"), "the workload ran from the initramfs")
    }
}

@Suite("tandem bench --image: a user's image in each backend, ready at the program's own line",
       .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/crun"), "needs root and crun"))
struct ImageBenchTests {
    @Test("the microVM backend: run where /dev/kvm has hardware virtualisation; elsewhere listed as not run, naming the nested lab")
    func microVMBackend() throws {
        let setup = try ImageRunTests.Setup()
        let out = setup.directory.appendingPathComponent("report").path
        let result = try Tandem.run(["bench", "--image", "sample:1", "--store", setup.store, "--backends", "container,microvm",
                                     "--trials", "1", "--warmup", "0", "--out", out, "--", "echo UP"])
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any])
        let backends = try #require(json["backends"] as? [[String: Any]])
        let microvm = try #require(backends.first { $0["name"] as? String == "microvm" })
        let hardware = (json["host"] as? [String: Any])?["virtualisation"] as? String == "hardware"
        let samples = (json["samples"] as? [[String: Any]] ?? []).filter { $0["backend"] as? String == "microvm" }
        if hardware {
            #expect(microvm["available"] as? Bool == true && samples.first?["status"] as? Int == 0, "\(microvm) \(samples)")
        } else {
            #expect(microvm["available"] as? Bool == false && (microvm["reason"] as? String ?? "").contains("tandem lab nested --image"), "\(microvm)")
            #expect(samples.isEmpty)
            #expect(result.stderr.contains("microvm: not run"), "\(result.stderr.suffix(500))")
        }
    }

    @Test("container, crun and runc: every trial reaches the program's ready line; the footprint has the image's layers")
    func bench() throws {
        let setup = try ImageRunTests.Setup()
        let out = setup.directory.appendingPathComponent("report").path
        let result = try Tandem.run(["bench", "--image", "sample:1", "--store", setup.store, "--backends", "container,crun,runc",
                                     "--trials", "2", "--warmup", "0", "--ready", "^APP-UP [0-9]+$", "--out", out, "--", "echo APP-UP now; echo APP-UP 42; id -u; cat /bin/busybox > /home/app/copy"])
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any])
        let samples = try #require(json["samples"] as? [[String: Any]])
        #expect(Set(samples.compactMap { $0["backend"] as? String }) == ["container", "crun", "runc"])
        #expect(samples.count == 6)
        let notes = (json["notes"] as? [String] ?? []).joined(separator: "\n")
        for sample in samples {
            #expect(sample["status"] as? Int == 0, "\(sample)\n\(notes)")
            #expect(sample["readyMs"] as? Double != nil, "no ready line timed: \(sample)")
        }
        let footprint = try #require(json["footprint"] as? [[String: Any]])
        #expect(footprint.contains { ($0["name"] as? String)?.hasPrefix("image layers") == true && ($0["bytes"] as? Int ?? 0) > 1_000_000 })
        // What the program wrote (a copy of busybox): the container's own layer after a run.
        let busybox = try #require(FileManager.default.attributesOfItem(atPath: "/bin/busybox")[.size] as? Int)
        let written = footprint.first { ($0["name"] as? String) == "the container's own layer after a run" }?["bytes"] as? Int
        #expect(written.map { $0 >= busybox && $0 < busybox + 1_000_000 } == true, "the container's layer: \(String(describing: written)) bytes for a \(busybox)-byte copy")
        #expect(try String(contentsOfFile: out + "/report.md", encoding: .utf8).contains("## Workload `app`"))
        // A whole-line expression no line matches: not ready, although lines start with its text.
        let strict = setup.directory.appendingPathComponent("strict").path
        let none = try Tandem.run(["bench", "--image", "sample:1", "--store", setup.store, "--backends", "container", "--trials", "1",
                                   "--warmup", "0", "--ready", "^APP-UP$", "--out", strict, "--", "echo APP-UP now"])
        #expect(none.status == 0, "\(none.stderr.suffix(1000))")
        let strictJSON = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: strict + "/results.json"))) as? [String: Any])
        let strictSamples = try #require(strictJSON["samples"] as? [[String: Any]])
        #expect(strictSamples.count == 1 && strictSamples.allSatisfy { $0["readyMs"] == nil || $0["readyMs"] is NSNull }, "\(strictSamples)")
        // A failing trial: its status is kept, and what it printed last is in the notes (why).
        let failing = setup.directory.appendingPathComponent("failing").path
        let failed = try Tandem.run(["bench", "--image", "sample:1", "--store", setup.store, "--backends", "container", "--trials", "1",
                                     "--warmup", "0", "--out", failing, "--", "echo first line; echo cannot-open-the-config >&2; exit 3"])
        #expect(failed.status == 0, "\(failed.stderr.suffix(1000))")
        let failedJSON = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: failing + "/results.json"))) as? [String: Any])
        #expect((failedJSON["samples"] as? [[String: Any]])?.first?["status"] as? Int == 3)
        let failedNotes = failedJSON["notes"] as? [String] ?? []
        #expect(failedNotes.contains { $0.contains("container × app round 0: status 3") && $0.contains("cannot-open-the-config") }, "\(failedNotes)")
    }

    @Test("bad combinations are refused, named")
    func refusals() throws {
        let setup = try ImageRunTests.Setup()
        for (arguments, expected) in [(["--image", "sample:1", "--workloads", "hello"], "--workloads: not with --image"),
                                      (["--image", "sample:1", "--backends", "tiny-microvm"], "unknown backend tiny-microvm for --image"),
                                      (["--image", "nosuch:1"], "image nosuch:1: not in the store"),
                                      (["--ready", "X"], "--store, --ready and a command are for --image"),
                                      (["--image", "sample:1", "--ready", "(unclosed"], "--ready (unclosed: not a regular expression")] {
            let result = try Tandem.run(["bench", "--store", setup.store, "--out", setup.directory.appendingPathComponent("r").path] + arguments)
            #expect(result.status != 0 && result.stderr.contains(expected), "\(arguments): \(result.stderr)")
        }
    }
}

@Suite("tandem lab nested --image: a user's image in Tandem's own VMM (as its initramfs), L2 of the nested lab", .serialized,
       .enabled(if: getuid() == 0 && Lab.kernel != nil && Lab.qemu && Lab.imageBuilt && Lab.labTimeBuilt,
                "needs root, linux-image-cloud-amd64, qemu-system-x86, make guests and make image"))
struct ImageMicroVMTests {
    @Test("the same program, user, directory and whiteouts as in the container; its exit status is the lab's")
    func nested() throws {
        let setup = try ImageRunTests.Setup()
        let probe = "id; pwd; echo $FROM_IMAGE $HOME; ls /opaque; ls /gone 2>&1; cat /data/new; exit 3"
        let container = try setup.run(["sample:1", "--", probe])
        let lab = try Tandem.run(["lab", "nested", "--image", "sample:1", "--store", setup.store, "--verbose", "--", probe])
        #expect(lab.status == 3, "\(lab.stdout.suffix(1500)) \(lab.stderr.suffix(500))")
        let lines = lab.stdout.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").map(String.init)
        let expected = container.stdout.split(separator: "\n").map(String.init)
        #expect(lines.filter { expected.contains($0) } == expected, "\(lab.stdout.suffix(2000))")
        #expect(lab.stdout.contains("TANDEM-RESULT workload=image status=3"))
        #expect(lab.stdout.contains("L2 = image sample:1 as its initramfs"))
        let left = try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("tandem-microvm.") }
        #expect(left.isEmpty, "the initramfs's directory is left")
    }

    @Test("--root-disk: the same from the image's root disk on Tandem's virtio-blk (made once in the store, which L2's writes never reach)")
    func nestedRootDisk() throws {
        let setup = try ImageRunTests.Setup()
        let probe = "id; pwd; echo $FROM_IMAGE $HOME; ls /opaque; ls /gone 2>&1; cat /data/new; echo w > /home/app/w && cat /home/app/w; exit 3"
        let container = try setup.run(["sample:1", "--", probe])
        let lab = try Tandem.run(["lab", "nested", "--image", "sample:1", "--store", setup.store, "--root-disk", "--verbose", "--", probe])
        #expect(lab.status == 3, "\(lab.stdout.suffix(1500)) \(lab.stderr.suffix(500))")
        let lines = lab.stdout.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n").map(String.init)
        let expected = container.stdout.split(separator: "\n").map(String.init)
        #expect(lines.filter { expected.contains($0) } == expected, "\(lab.stdout.suffix(2000))")
        #expect(lab.stdout.contains("EXT4-fs (vda): mounted"), "not from the disk: \(lab.stdout.suffix(1500))")
        #expect(lab.stdout.contains("L2 = image sample:1 from its root disk on virtio-blk"))
        // The store's disk is the one made for the image, untouched by L2 (it wrote to L1's copy).
        let disks = try FileManager.default.contentsOfDirectory(atPath: setup.store + "/vm").filter { $0.hasSuffix(".ext4") }
        try #require(disks.count == 1)
        let mounted = try TestTools.run("/sbin/debugfs", ["-R", "stat /home/app/w", setup.store + "/vm/" + disks[0]])
        #expect(mounted.stderr.contains("File not found") || mounted.stdout.isEmpty, "L2's write reached the store's disk: \(mounted.stdout)")
    }

    @Test("--as microvm: boots where /dev/kvm has hardware virtualisation; elsewhere refused before anything is built, naming the lab")
    func refusedWhenEmulated() throws {
        let setup = try ImageRunTests.Setup()
        let host = try Tandem.run(["host", "--json"])
        let facts = try JSONSerialization.jsonObject(with: Data(host.stdout.utf8)) as? [String: Any]
        let mode = (facts?["virtualisation"] as? [String: Any])?["mode"] as? String
        let result = try setup.run(["sample:1", "--as", "microvm", "--", "exit 4"])
        if mode == "hardware" {
            // Where /dev/kvm has VT-x/AMD-V it boots in Tandem's VMM, and the status comes back.
            #expect(result.status == 4, "\(result.stderr.suffix(1500))")
        } else {
            #expect(result.status == 125 && result.stderr.contains("tandem lab nested"), "\(result.stderr)")
            #expect(!result.stderr.contains("as the microVM's initramfs"), "the initramfs was built before the refusal")
        }
    }
}

@Suite("tandem image pull", .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo"), "needs root and skopeo"))
struct ImagePullTests {
    @Test("from a registry where one is reachable; where none is, it says so (125) and the store is unchanged")
    func pull() throws {
        let store = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-pull-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: store) }
        let result = try Tandem.run(["image", "pull", "--store", store, "busybox:1.36"])
        let list = try Tandem.run(["image", "ls", "--json", "--store", store])
        let images = (try? JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]]) ?? []
        if result.status == 0 {
            #expect(images.contains { ($0["names"] as? [String])?.contains("busybox:1.36") == true }, "\(list.stdout)")
        } else {
            #expect(result.status == 125)
            #expect(result.stderr.contains("no registry is reachable from this host"), "\(result.stderr)")
            #expect(images.isEmpty)
            #expect(try FileManager.default.contentsOfDirectory(atPath: "/tmp").filter { $0.hasPrefix("tandem-pull-") && !store.hasSuffix($0) }.isEmpty)
        }
    }
}

/// Debian's standard kernel, beside the cloud one: its drivers are modules (ext4 too), kvm-amd needs ccp.
enum StandardKernel {
    static let path: String? = ((try? FileManager.default.contentsOfDirectory(atPath: "/boot")) ?? [])
        .filter { $0.hasPrefix("vmlinuz-") && $0.hasSuffix("-amd64") && !$0.hasSuffix("-cloud-amd64") }.sorted().last.map { "/boot/" + $0 }
}

extension ImageMicroVMTests {
    @Test("Debian's standard kernel in the nested lab: L1 loads kvm-amd with ccp (modules.dep) and L2 boots",
          .enabled(if: StandardKernel.path != nil, "needs Debian's linux-image-amd64 (make deps)"))
    func standardKernelLab() throws {
        let result = try Tandem.run(["lab", "nested", "--kernel", StandardKernel.path!])
        #expect(result.status == 0, "\(result.stdout.suffix(1500)) \(result.stderr.suffix(500))")
        #expect(result.stdout.contains("kvm-amd loaded") && !result.stdout.contains("LAB-ERROR"), "\(result.stdout)")
    }
}

@Suite("tandem image import stops before it fills the disk: a decompression bomb, too many files",
       .enabled(if: getuid() == 0, "needs root (a small tmpfs store, mounted in a mount namespace of its own)"))
struct ImageImportSpaceTests {
    /// Imports `source` into a store on a tmpfs of `size` (and `inodes`) that only the import's
    /// own mount namespace sees; returns its result and what was left in the store's directories.
    static func importOnSmallDisk(_ source: String, store: String, options: String) throws -> (result: Tandem.Result, left: String) {
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let script = "mount -t tmpfs -o \(options) tmpfs \"$0\" || exit 99; \"$@\"; status=$?; echo LEFT $(find \"$0/tmp\" \"$0/layers\" \"$0/images\" -mindepth 1) >&2; exit $status"
        let result = try Tandem.run(["image", "import", "--quiet", "--store", store, source],
                                    prefix: ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, store])
        return (result, result.stderr.components(separatedBy: "LEFT").last ?? "")
    }

    @Test("a 96 MiB layer (100 KiB of gzip) into a 32 MiB store: stopped by name, nothing kept; the same as a gzip'd archive")
    func bomb() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bomb-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        var tar = TarBuilder()
        tar.file("zeros", Data(count: 96 << 20))
        var layout = try OCILayoutBuilder(directory.appendingPathComponent("layout"))
        try layout.image([.init(tar: tar.archive)], config: SampleImage.config, name: "bomb:1")
        let (layer, left) = try Self.importOnSmallDisk(directory.appendingPathComponent("layout").path, store: directory.appendingPathComponent("store").path, options: "size=32m")
        #expect(layer.status != 0)
        #expect(layer.stderr.contains("layer sha256:") && layer.stderr.contains("zeros: stopped: the file system under") && layer.stderr.contains("decompression bomb"), "\(layer.stderr)")
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "left in the store: \(left)")
        // The same bytes as an uncompressed layer in an archive gzip'd whole: stopped while the
        // archive is decompressed.
        var plain = try OCILayoutBuilder(directory.appendingPathComponent("plain"))
        try plain.image([.init(tar: tar.archive, gzip: false)], config: SampleImage.config, name: "bomb:2")
        let archive = directory.appendingPathComponent("bomb.tar").path
        #expect(try TestTools.run("/bin/tar", ["-C", directory.appendingPathComponent("plain").path, "-cf", archive, "."]).status == 0)
        #expect(try TestTools.run("/bin/gzip", ["-1", archive]).status == 0)
        let (whole, leftWhole) = try Self.importOnSmallDisk(archive + ".gz", store: directory.appendingPathComponent("store2").path, options: "size=32m")
        #expect(whole.status != 0)
        #expect(whole.stderr.contains("bomb.tar.gz") && whole.stderr.contains("stopped: the file system under"), "\(whole.stderr)")
        #expect(leftWhole.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "left in the store: \(leftWhole)")
    }

    @Test("a layer of 6,000 empty files into a store of 4,000 inodes: stopped by name, nothing kept")
    func inodes() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-inodes-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        var tar = TarBuilder()
        for index in 0..<6000 { tar.file("many/\(index)", "") }
        var layout = try OCILayoutBuilder(directory.appendingPathComponent("layout"))
        try layout.image([.init(tar: tar.archive)], config: SampleImage.config, name: "many:1")
        let (result, left) = try Self.importOnSmallDisk(directory.appendingPathComponent("layout").path, store: directory.appendingPathComponent("store").path, options: "size=64m,nr_inodes=4000")
        #expect(result.status != 0)
        #expect(result.stderr.contains("layer sha256:") && result.stderr.contains("free inodes"), "\(result.stderr)")
        #expect(left.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "left in the store: \(left)")
    }
}

/// A user's own image store, rootless: written from the user's namespace (its /etc/subuid range),
/// run from in a container mapping the same ranges.
@Suite("Rootless images: a user imports, runs and removes images in a store of its own",
       .enabled(if: getuid() == 0 && Rootless.toolsPresent, "needs root (to make the user), useradd, runuser and newuidmap (package uidmap)"))
struct RootlessImageTests {
    @Test("import (owners within the user's ranges, whiteouts, user.overlay.opaque), run with the image's view, root kept out of the store, rm")
    func importRunRemove() throws {
        let user = try RootlessTests.User()
        defer { user.remove() }
        let layout = user.base + "/layout", store = user.base + "/store"
        _ = try SampleImage.layout(at: URL(fileURLWithPath: layout))
        _ = try OCI.exec(["/bin/chmod", "-R", "a+rX", layout])
        let imported = try user.run([Tandem.path, "image", "import", "--store", store, layout])
        try #require(imported.status == 0, "\(imported.stderr)")
        // Owners: the layer's uid 1000 is the user's subordinate uid 999 past its range's start.
        let range = try #require(user.subordinate("/etc/subuid"))
        let keep = try #require(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").map { store + "/layers/" + $0 + "/diff/data/keep" }
            .first { FileManager.default.fileExists(atPath: $0) })
        var info = stat()
        try #require(lstat(keep, &info) == 0)
        #expect(Int(info.st_uid) == range.start + 999, "owner \(info.st_uid), range from \(range.start)")
        // The container: the same view as root's run of the same image.
        let probe = "id; ls /opaque; ls /gone 2>&1; cat /data/new /data/keep; stat -c '%u:%g' /data/keep; echo w > /home/app/w && cat /home/app/w; exit 3"
        let rootStore = user.base + "/root-store"
        try #require(try Tandem.run(["image", "import", "--store", rootStore, layout]).status == 0)
        let asRoot = try Tandem.run(["run", "sample:1", "--store", rootStore, "--", probe])
        let asUser = try user.run([Tandem.path, "run", "sample:1", "--store", store, "--", probe])
        #expect(asUser.status == 3, "\(asUser.stderr)")
        #expect(asUser.stdout == asRoot.stdout, "the rootless container saw another image: \(asUser.stdout) vs \(asRoot.stdout)")
        #expect(asUser.stdout.hasPrefix("uid=1000(app)") && asUser.stdout.contains("1000:1000"), "\(asUser.stdout)")
        // Root does not write into the user's store (its files would belong to root).
        let intruder = try Tandem.run(["image", "import", "--store", store, layout])
        #expect(intruder.status != 0 && intruder.stderr.contains("a rootless store"), "\(intruder.stderr)")
        let removed = try user.run([Tandem.path, "image", "rm", "--store", store, "sample:1"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: store + "/layers").isEmpty, "layers left")
        #expect(try FileManager.default.contentsOfDirectory(atPath: user.runtimeDirectory).filter { !$0.hasPrefix(".") }.allSatisfy { name in
            (try? FileManager.default.contentsOfDirectory(atPath: user.runtimeDirectory + "/" + name).filter { !$0.hasPrefix(".") }.isEmpty) ?? true
        }, "container state left")
    }
}
