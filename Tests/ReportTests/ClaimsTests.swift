@testable import Bench
import Foundation
@testable import Report
import Testing

/// Results built by hand so that each claim meets each of its verdicts: the rules in
/// docs/bench.md, exercised from both sides.
struct ResultsFixture {
    static let hostBoot = "host-boot-id"
    static let nonce = "0123456789abcdef"
    static let hostMAC = "52:54:00:12:34:56"
    var results: BenchResults

    init(trials: Int = 10) {
        let host = HostSummary(cpu: "test CPU", cpus: 2, kernel: "6.1.0-host", virtualisation: "hardware", virtualisationExplanation: "test",
                               cgroups: "v2", tools: [:], bootID: Self.hostBoot, hostname: "host", macs: [Self.hostMAC], canary: Self.nonce)
        results = BenchResults(startedAt: "2026-11-29T00:00:00Z", host: host, trials: trials, warmup: 0, backends: [], workloads: ["hello", "probe"])
        results.host.canaryInKeyring = true
        results.complete = true
    }

    static let kinds = ["container": "container", "crun": "container", "runc": "container", "tiny-microvm": "microVM (bare guest, no OS)",
                        "libvirt": "full VM (libvirt + QEMU)", "qemu-microvm": "microVM (Linux, QEMU)", "process": "plain process (no isolation)"]

    mutating func add(_ name: String) {
        guard !results.backends.contains(where: { $0.name == name }) else { return }
        results.backends.append(BackendInfo(name: name, kind: "ours", kindOfSandbox: Self.kinds[name]!, available: true, reason: nil,
                                            execution: name == "tiny-microvm" || name == "libvirt" ? "hardware KVM" : "native (host kernel)",
                                            description: name))
    }

    /// `trials` hello samples around `readyMs` and `rssMiB`.
    mutating func hello(_ name: String, readyMs: Double, rssMiB: Double = 10) {
        add(name)
        for trial in 0..<results.trials {
            let wobble = Double(trial % 3) * 0.01
            results.samples.append(Sample(backend: name, workload: "hello", trial: trial, status: 0, readyMs: readyMs * (1 + wobble),
                                          totalMs: readyMs * (1.5 + wobble), peakRSSBytes: UInt64(rssMiB * (1 + wobble) * 1_048_576),
                                          launcherCPUMs: 1, result: nil, probe: nil))
        }
    }

    /// One probe sample. Defaults: a container's view (the host's kernel, nothing of the host reached).
    mutating func probe(_ name: String, boot: String = hostBoot, pids: Int = 2, _ extra: [String: String] = [:]) {
        add(name)
        var facts = ["boot_id": boot, "pids": String(pids), "kernel": boot == Self.hostBoot ? "6.1.0-host" : "6.1.0-guest",
                     "macs": "none", "host_procs": "no", "host_file": "none", "keyring": "none", "kcore": "denied", "sys_write": "rofs"]
        facts.merge(extra) { $1 }
        results.samples.append(Sample(backend: name, workload: "probe", trial: 0, status: 0, readyMs: 5, totalMs: 6, peakRSSBytes: nil,
                                      launcherCPUMs: nil, result: nil, probe: facts))
    }

    /// One network-reach run: `reached` lists the services ("loopback", "abstract", "bridge")
    /// that answered the nonce; the others answered nothing ("none", or "unrouted" for the bridge).
    mutating func network(_ sandbox: String, kind: String, reached: Set<String>, facts: Bool = true) {
        var values: [String: String] = [:]
        for service in ["loopback", "abstract", "bridge"] {
            values["net_" + service] = reached.contains(service) ? Self.nonce : service == "bridge" ? "unrouted" : "none"
        }
        results.networkReach = (results.networkReach ?? []) + [NetworkReachResult(
            sandbox: sandbox, kind: kind, network: "test", execution: "native (host kernel)", status: facts ? 0 : 1,
            facts: facts ? values : nil, note: facts ? "" : "no probe line")]
    }

    mutating func footprint(rootfs: UInt64?, kernel: UInt64?, initramfs: UInt64?) {
        results.footprint = []
        if let kernel { results.footprint.append(Artifact(name: "guest kernel (bzImage)", bytes: kernel, usedBy: [], note: "")) }
        if let initramfs { results.footprint.append(Artifact(name: "initramfs (the same image, for VMs)", bytes: initramfs, usedBy: [], note: "")) }
        if let rootfs { results.footprint.append(Artifact(name: "image rootfs (containers' shared lower layer)", bytes: rootfs, usedBy: [], note: "")) }
    }

    mutating func managerKilled(_ runtime: String, survived: Bool, collected: Bool = false) {
        results.managerKill = (results.managerKill ?? []) + [ManagerKillResult(
            runtime: runtime, manager: "m", measured: true, containerSurvived: survived, exitStatusCollected: collected,
            expectedStatus: 7, reported: "r", note: "")]
    }

    func claim(_ id: String) throws -> Claim {
        try #require(ReportModel(results, baseline: nil).claims.first { $0.id == id })
    }
}

@Suite("The seeds' claims: each verdict from the figures, by its rule")
struct ClaimsTests {
    @Test("an image bench (the user's program `app`, the image's layers and the VM's root disk): start, memory and space answered from it")
    func imageBench() throws {
        var fixture = ResultsFixture()
        fixture.results.workloads = ["app"]
        for (name, ready, rss) in [("container", 6.0, 6.0), ("libvirt", 2100.0, 250.0)] {
            fixture.add(name)
            for trial in 0..<fixture.results.trials {
                fixture.results.samples.append(Sample(backend: name, workload: "app", trial: trial, status: 0, readyMs: ready, totalMs: ready * 1.2,
                                                      peakRSSBytes: UInt64(rss * 1_048_576), launcherCPUMs: 1, result: nil, probe: nil))
            }
        }
        fixture.results.footprint = [
            Artifact(name: "image layers (2, in the store)", bytes: 186_000_000, usedBy: ["container"], note: ""),
            Artifact(name: "guest kernel (bzImage)", bytes: 8_000_000, usedBy: ["libvirt"], note: ""),
            Artifact(name: "VM root disk (ext4, from the layers)", bytes: 190_000_000, usedBy: ["libvirt"], note: ""),
        ]
        let start = try fixture.claim("start")
        #expect(start.verdict == .confirmed && start.measurement.hasPrefix("app, spawn → ready"), "\(start)")
        let memory = try fixture.claim("memory")
        #expect(memory.verdict == .confirmed && memory.measurement.hasPrefix("app, peak RSS"), "\(memory)")
        let space = try fixture.claim("space")
        // 198 MB for the VM against 186 MB of layers (not 10×); the image is within 100–200 MB.
        #expect(space.verdict == .partly, "\(space)")
        #expect(space.measurement.contains("as a container's layers") && space.measurement.contains("root disk"), "\(space.measurement)")
        // Without the root disk (no libvirt trial made it): not measured, and says what is missing.
        fixture.results.footprint.removeLast()
        let missing = try fixture.claim("space")
        #expect(missing.verdict == .notMeasured && missing.why.contains("VM root disk"), "\(missing)")
    }

    @Test("snapshot: a microVM snapshot alone is measured and shown, but the claim waits for a container checkpoint")
    func snapshotClaim() throws {
        var results = ResultsFixture().results
        results.snapshots = (0..<3).map { trial in
            SnapshotSample(subject: "tiny-microvm", trial: trial, memoryMiB: 128, bootRunningMs: 1.5, bootReadyMs: 2.5, restoreRunningMs: 1.8,
                           restoreReadyMs: 2.4, pauseMs: 0.07, snapshotMs: 1.4, memoryBytes: 128 << 20,
                           memoryAllocatedBytes: 36_864 + UInt64(trial) * 4096, stateBytes: 5_936, problem: nil)
        }
        let model = ReportModel(results, baseline: nil)
        let claim = try #require(model.claims.first { $0.id == "snapshot" })
        #expect(claim.verdict == .notMeasured)
        #expect(claim.measurement == "tiny-microvm (128 MiB of RAM): 46 KiB on disk (medians); no container checkpoint", "\(claim.measurement)")
        #expect(claim.why.contains("no container checkpoint"))
        let markdown = model.markdown()
        #expect(markdown.contains("| tiny-microvm, 128 MiB: restore → next ready | 3 | 2.40 ms | 2.40 ms–2.40 ms |"))
        #expect(markdown.contains("| tiny-microvm, 128 MiB: memory file (allocated on disk) | 3 | 40 KiB |"))
        #expect(!markdown.contains("cold boot → exit"), "a figure no trial gave has no row")
        #expect(model.html().contains("<h2>Snapshots: cold boot against restore</h2>"))
    }

    @Test("every claim is present, and without any input every one is 'not measured here' with the reason")
    func nothingMeasured() throws {
        let claims = ReportModel(ResultsFixture().results, baseline: nil).claims
        #expect(claims.map(\.id) == ["start", "kernel", "memory", "space", "one-app", "host-reach", "engine-down", "snapshot"])
        for claim in claims {
            #expect(claim.verdict == .notMeasured, "\(claim.id)")
            #expect(!claim.why.isEmpty, "\(claim.id) says what was missing")
        }
    }

    @Test("start: confirmed, contradicted, partly, not measured")
    func start() throws {
        var fixture = ResultsFixture()
        fixture.hello("container", readyMs: 5)
        fixture.hello("crun", readyMs: 8)
        #expect(try fixture.claim("start").why.contains("no VM backend"))
        fixture.hello("libvirt", readyMs: 900)
        #expect(try fixture.claim("start").verdict == .confirmed)
        fixture.hello("tiny-microvm", readyMs: 2)
        let partly = try fixture.claim("start")
        #expect(partly.verdict == .partly)
        #expect(partly.why.contains("tiny-microvm"))
        var faster = ResultsFixture()
        faster.hello("runc", readyMs: 20)
        faster.hello("tiny-microvm", readyMs: 2)
        #expect(try faster.claim("start").verdict == .contradicted)
        var noContainer = ResultsFixture()
        noContainer.hello("libvirt", readyMs: 900)
        let missing = try noContainer.claim("start")
        #expect(missing.verdict == .notMeasured)
        #expect(missing.why.contains("no container backend"))
    }

    @Test("kernel: no VM probe is 'not measured', never confirmed; a VM on the host's kernel contradicts")
    func kernel() throws {
        var fixture = ResultsFixture()
        fixture.probe("container")
        let containerOnly = try fixture.claim("kernel")
        #expect(containerOnly.verdict == .notMeasured)
        #expect(containerOnly.why.contains("no VM backend"))
        fixture.probe("libvirt", boot: "guest-boot-id")
        #expect(try fixture.claim("kernel").verdict == .confirmed)
        fixture.probe("qemu-microvm", boot: ResultsFixture.hostBoot)
        let contradicted = try fixture.claim("kernel")
        #expect(contradicted.verdict == .contradicted)
        #expect(contradicted.why.contains("qemu-microvm"))
        var ownKernelContainer = ResultsFixture()
        ownKernelContainer.probe("crun", boot: "other")
        ownKernelContainer.probe("libvirt", boot: "guest-boot-id")
        #expect(try ownKernelContainer.claim("kernel").verdict == .contradicted)
    }

    @Test("memory: 10× the largest container's peak RSS decides")
    func memory() throws {
        var fixture = ResultsFixture()
        fixture.hello("container", readyMs: 5, rssMiB: 4)
        fixture.hello("runc", readyMs: 9, rssMiB: 10)
        #expect(try fixture.claim("memory").verdict == .notMeasured)
        fixture.hello("libvirt", readyMs: 900, rssMiB: 200)
        #expect(try fixture.claim("memory").verdict == .confirmed)
        fixture.hello("tiny-microvm", readyMs: 2, rssMiB: 5)
        #expect(try fixture.claim("memory").verdict == .partly)
        var small = ResultsFixture()
        small.hello("container", readyMs: 5, rssMiB: 10)
        small.hello("tiny-microvm", readyMs: 2, rssMiB: 99)
        #expect(try small.claim("memory").verdict == .contradicted, "9.9× is not 10×")
    }

    @Test("space: the footprint decides both parts")
    func space() throws {
        var fixture = ResultsFixture()
        fixture.footprint(rootfs: 150_000_000, kernel: 1_000_000_000, initramfs: 600_000_000)
        #expect(try fixture.claim("space").verdict == .confirmed)
        fixture.footprint(rootfs: 5_000_000, kernel: 80_000_000, initramfs: 20_000_000)
        #expect(try fixture.claim("space").verdict == .partly, "20× but not 100–200 MB")
        fixture.footprint(rootfs: 150_000_000, kernel: 14_000_000, initramfs: 6_000_000)
        #expect(try fixture.claim("space").verdict == .partly, "100–200 MB but not 10×")
        fixture.footprint(rootfs: 300_000_000, kernel: 2_000_000_000, initramfs: 1_000_000_000)
        #expect(try fixture.claim("space").verdict == .partly, "10× but larger than 200 MB")
        fixture.footprint(rootfs: 5_900_000, kernel: 14_000_000, initramfs: 6_000_000)
        #expect(try fixture.claim("space").verdict == .contradicted)
        fixture.footprint(rootfs: 5_900_000, kernel: nil, initramfs: 6_000_000)
        let missing = try fixture.claim("space")
        #expect(missing.verdict == .notMeasured)
        #expect(missing.why.contains("guest kernel"))
    }

    @Test("one app: two processes inside contradict it; one is not a measurement of it")
    func oneApp() throws {
        var fixture = ResultsFixture()
        fixture.probe("container", pids: 1)
        #expect(try fixture.claim("one-app").verdict == .notMeasured)
        fixture.probe("crun", pids: 2)
        let contradicted = try fixture.claim("one-app")
        #expect(contradicted.verdict == .contradicted)
        #expect(contradicted.why.contains("crun") && !contradicted.why.contains("container,"))
    }

    @Test("host reach: every part of the rule, with the bare process as the control")
    func hostReach() throws {
        var fixture = ResultsFixture()
        fixture.probe("container", ["keyring": ResultsFixture.nonce])
        #expect(try fixture.claim("host-reach").verdict == .notMeasured, "no VM probe")
        fixture.probe("libvirt", boot: "guest", ["kcore": "elf", "sys_write": "yes"])
        let confirmed = try fixture.claim("host-reach")
        #expect(confirmed.verdict == .confirmed, "a VM's own kcore and /sys are not the host's")
        #expect(confirmed.measurement.contains("container reached the host's kernel keyring"))

        var guessed = ResultsFixture()
        guessed.probe("container", ["keyring": "some-other-value", "host_file": "guess"])
        guessed.probe("libvirt", boot: "guest")
        #expect(try guessed.claim("host-reach").verdict == .partly, "only the nonce counts: the container reached nothing")

        var leaky = ResultsFixture()
        leaky.probe("container", ["macs": ResultsFixture.hostMAC])
        leaky.probe("libvirt", boot: "guest", ["host_file": ResultsFixture.nonce])
        #expect(try leaky.claim("host-reach").verdict == .partly)
        var worst = ResultsFixture()
        worst.probe("container")
        worst.probe("libvirt", boot: "guest", ["host_procs": "yes"])
        #expect(try worst.claim("host-reach").verdict == .contradicted)

        var brokenControl = ResultsFixture()
        brokenControl.probe("container", ["keyring": ResultsFixture.nonce])
        brokenControl.probe("libvirt", boot: "guest")
        brokenControl.probe("process")
        let failed = try brokenControl.claim("host-reach")
        #expect(failed.verdict == .notMeasured)
        #expect(failed.why.contains("checks failed"))
        brokenControl.probe("process", ["host_procs": "yes", "sys_write": "yes"])
        brokenControl.results.samples.removeAll { $0.backend == "process" && $0.probe?["host_procs"] == "no" }
        #expect(try brokenControl.claim("host-reach").verdict == .confirmed)

        var noKcore = ResultsFixture()
        noKcore.probe("container", ["kcore": "absent", "sys_write": "absent"])
        let model = ReportModel(noKcore.results, baseline: nil)
        let reach = model.reach(try #require(model.probes.first?.facts))
        #expect(reach.kernelMemory == nil && reach.kernelSettings == nil, "a kernel without /proc/kcore measures nothing there")
        #expect(reach.file == false, "the other facts still count")

        var noKeyring = ResultsFixture()
        noKeyring.results.host.canaryInKeyring = false
        noKeyring.probe("container", ["keyring": ResultsFixture.nonce])
        noKeyring.probe("libvirt", boot: "guest")
        #expect(try noKeyring.claim("host-reach").verdict == .partly, "a keyring check that did not run counts for nothing")
    }

    @Test("host reach, the network half: the host's loopback and abstract sockets count, its bridge address's service does not; the control decides whether it counts")
    func hostReachNetwork() throws {
        // The file-system half alone: no container reached anything, no VM did: partly.
        var fixture = ResultsFixture()
        fixture.probe("container")
        fixture.probe("libvirt", boot: "guest")
        fixture.probe("process", ["host_procs": "yes"])
        #expect(try fixture.claim("host-reach").verdict == .partly)
        fixture.network("process", kind: "process", reached: ["loopback", "abstract", "bridge"])
        fixture.network("tandem ctr --net loopback", kind: "container", reached: [])
        fixture.network("tandem ctr --net bridge", kind: "container", reached: ["bridge"])
        fixture.network("tandem vm run --backend qemu --net bridge", kind: "VM", reached: ["bridge"])
        let bridgeOnly = try fixture.claim("host-reach")
        #expect(bridgeOnly.verdict == .partly, "the bridge address's service is offered to the bridge: it does not count")
        #expect(bridgeOnly.why.contains("answered tandem ctr --net bridge, tandem vm run --backend qemu --net bridge alike"))
        #expect(bridgeOnly.why.contains("no container reached the host's loopback service or abstract socket, no VM did"))
        fixture.network("tandem ctr --net host", kind: "container", reached: ["loopback", "abstract", "bridge"])
        let confirmed = try fixture.claim("host-reach")
        #expect(confirmed.verdict == .confirmed, "a host-network container reaches the host's own sockets")
        #expect(confirmed.measurement.contains("tandem ctr --net host reached the host's loopback service, the host's abstract Unix socket"))
        #expect(confirmed.measurement.contains("tandem ctr --net loopback reached none of the host's services"))
        #expect(confirmed.why.contains("answered tandem ctr --net bridge, tandem vm run --backend qemu --net bridge alike"), "not the host-network container: \(confirmed.why)")
        fixture.network("a leaky VM", kind: "VM", reached: ["loopback"])
        #expect(try fixture.claim("host-reach").verdict == .partly, "a VM that reaches the host's loopback breaks the VM part")

        // A control that reached nothing: the network half is not counted.
        var broken = ResultsFixture()
        broken.probe("container")
        broken.probe("libvirt", boot: "guest")
        broken.network("process", kind: "process", reached: ["bridge"])
        broken.network("tandem ctr --net host", kind: "container", reached: ["loopback"])
        let notCounted = try broken.claim("host-reach")
        #expect(notCounted.verdict == .partly)
        #expect(notCounted.why.contains("the network half is not counted"))

        // The table: yes / no / no route, and a run without facts shows its note.
        broken.network("tandem ctr --net bridge", kind: "container", reached: [], facts: false)
        let rows = ReportModel(broken.results, baseline: nil).networkReachRows
        #expect(rows.first == ["process", "test", "native (host kernel)", "no", "no", "yes", ""])
        #expect(rows[1][3...5] == ["yes", "no", "no route"])
        #expect(rows.last?[3...6] == ["—", "—", "—", "status 1: no probe line"])
        let markdown = ReportModel(broken.results, baseline: nil).markdown()
        #expect(markdown.contains("## What a sandbox reaches over the network"))
        #expect(markdown.contains("| `tandem ctr --net host` | test | native (host kernel) | yes | no | no route |  |"))
    }

    @Test("engine down: from the manager-kill measurement")
    func engine() throws {
        var fixture = ResultsFixture()
        #expect(try fixture.claim("engine-down").verdict == .notMeasured)
        fixture.managerKilled("crun", survived: false)
        #expect(try fixture.claim("engine-down").verdict == .confirmed)
        fixture.managerKilled("podman", survived: true)
        let partly = try fixture.claim("engine-down")
        #expect(partly.verdict == .partly)
        #expect(partly.why.contains("exit status (podman)"))
        fixture.results.managerKill = nil
        fixture.managerKilled("runc", survived: true, collected: true)
        let contradicted = try fixture.claim("engine-down")
        #expect(contradicted.verdict == .contradicted)
        #expect(!contradicted.why.contains("lost"), "runc's status was collected")
        fixture.results.managerKill = [ManagerKillResult(runtime: "runc", manager: "—", measured: false, containerSurvived: nil,
                                                         exitStatusCollected: nil, expectedStatus: 7, reported: "—", note: "did not start")]
        let failed = try fixture.claim("engine-down")
        #expect(failed.verdict == .notMeasured)
        #expect(failed.why.contains("did not start"))
    }

    @Test("every claim's rule stands in docs/bench.md word for word")
    func rulesDocumented() throws {
        let docs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/bench.md")
        let page = try String(contentsOf: docs, encoding: .utf8)
        for claim in ReportModel(ResultsFixture().results, baseline: nil).claims {
            #expect(page.contains(claim.rule), "\(claim.id)'s rule")
            #expect(page.contains("`\(claim.id)`"), "\(claim.id) is named")
        }
    }

    @Test("fewer than 10 trials: the timing claims say they are indicative only")
    func smallSamples() throws {
        var fixture = ResultsFixture(trials: 3)
        fixture.hello("container", readyMs: 5)
        fixture.hello("libvirt", readyMs: 900, rssMiB: 300)
        #expect(try fixture.claim("start").why.contains("n = 3: indicative only"))
        #expect(try fixture.claim("memory").why.contains("n = 3: indicative only"))
        var large = ResultsFixture(trials: 10)
        large.hello("container", readyMs: 5)
        large.hello("libvirt", readyMs: 900)
        #expect(try !large.claim("start").why.contains("indicative"))
    }
}

/// The manager-kill measurement reads what each runtime reports afterwards; these are outputs the
/// runtimes printed on this host, with and without the exit status.
@Suite("manager kill: reading each runtime's report")
struct ManagerKillReadingTests {
    @Test("tandem ctr ps: the STATUS column of the container's own row")
    func ctrPS() {
        let output = """
        CONTAINER ID  NAME  STATUS                                      PID    COMMAND
        333d66d0234e  mk1   exited (7)                                  15242  /bin/sh -c sleep 3; exit 7 mk1
        b75c46fce043  mk2   dead (its tandem was killed; rm cleans up)  15272  /bin/sh -c sleep 3; exit 7 mk2
        """
        #expect(ManagerKill.readCtrPS(output, name: "mk1") == ("exited (7)", true))
        #expect(ManagerKill.readCtrPS(output, name: "mk2") == ("dead (its tandem was killed; rm cleans up)", false))
        #expect(ManagerKill.readCtrPS(output, name: "mk3").collected == false)
        #expect(ManagerKill.readCtrPS(output, name: "mk").collected == false, "a prefix is not the name")
    }

    @Test("an OCI runtime's state: exitStatus where it keeps one")
    func ociState() {
        #expect(ManagerKill.readOCIState(#"{"ociVersion":"1.0.2","id":"c","pid":0,"status":"stopped","exitStatus":7}"#) == ("stopped, exitStatus 7", true))
        #expect(ManagerKill.readOCIState(#"{"ociVersion":"1.0.2","id":"c","pid":0,"status":"stopped","exitStatus":3}"#).collected == false)
        #expect(ManagerKill.readOCIState(#"{"ociVersion":"1.0.2","id":"c","pid":0,"status":"stopped"}"#) == ("stopped, no exit status", false))
        #expect(ManagerKill.readOCIState("container does not exist") == ("no state, no exit status", false))
    }

    @Test("podman inspect: exited with the code, or still 'running 0' when conmon is gone")
    func podman() {
        #expect(ManagerKill.readPodmanInspect("exited 7\n") == ("exited, exit code 7", true))
        #expect(ManagerKill.readPodmanInspect("running 0\n") == ("running, exit code 0", false))
        #expect(ManagerKill.readPodmanInspect("Error: no such container\n").collected == false)
    }
}
