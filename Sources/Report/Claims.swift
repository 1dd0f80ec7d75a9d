import Bench

/// The seeds' claims (the notes the project was born from, quoted in docs/bench.md), each answered from `results.json`
/// alone: the rule that decides its verdict, the figures it used, and why. A claim whose inputs
/// did not run says "not measured here" and what was missing: never a verdict it did not measure.
public struct Claim: Sendable {
    public enum Verdict: String, Sendable, CaseIterable {
        case confirmed, contradicted, partly
        case notMeasured = "not measured here"
    }
    /// A stable name for machines (summary.json) and tests.
    public var id: String
    public var claim: String
    public var source: String
    /// How the verdict is decided. The same words stand in docs/bench.md (a test checks).
    public var rule: String
    public var measurement: String
    public var verdict: Verdict
    /// The deciding figures in a sentence, or what was missing.
    public var why: String
}

/// What kind of sandbox a backend is, from `BackendInfo.kindOfSandbox` (Backends.swift).
enum SandboxClass {
    case container, vm, process

    init?(_ backend: BackendInfo) {
        if backend.kindOfSandbox.hasPrefix("container") { self = .container }
        else if backend.kindOfSandbox.contains("VM") { self = .vm }
        else if backend.kindOfSandbox.hasPrefix("plain process") { self = .process }
        else { return nil }
    }
}

/// What of the host a sandbox reached, from its probe (docs/bench.md, "What a sandbox can reach").
/// Each is nil when the probe or the host did not measure it (results from an older bench).
struct HostReach {
    var processes: Bool?
    var interfaces: Bool?
    var file: Bool?
    var keyring: Bool?
    var kernelMemory: Bool?
    var kernelSettings: Bool?

    /// What each fact is called and how it is told, in the order of `values` (for the matrix).
    static let facts: [(name: String, meaning: String)] = [
        ("host processes", "it sees the bench's stopwatch, a process on the host"),
        ("host network interfaces", "one of its interfaces has a host interface's hardware address"),
        ("a host file", "it read the nonce in a file in the bench's host temp directory"),
        ("the host's kernel keyring", "it found the key with the nonce that the bench added to root's keyring"),
        ("the host kernel's memory (/proc/kcore)", "/proc/kcore reads as an ELF image and the kernel is the host's"),
        ("the host kernel's settings (/sys writable)", "a /sys file opens for writing and the kernel is the host's"),
    ]
    var values: [Bool?] { [processes, interfaces, file, keyring, kernelMemory, kernelSettings] }
    /// The names of what it reached.
    var reached: [String] { zip(Self.facts, values).filter { $0.1 == true }.map(\.0.name) }
    var measured: Bool { values.contains { $0 != nil } }
}

extension ReportModel {
    func ms(_ value: Double) -> String { Format.milliseconds(value) }

    func backends(_ kind: SandboxClass) -> Set<String> {
        Set(results.backends.filter { SandboxClass($0) == kind }.map(\.name))
    }

    /// "n = 3: indicative only" when a cell has fewer than `Statistics.smallSample` trials.
    func smallSampleNote(_ rows: [Row]) -> String? {
        guard let n = rows.map(\.total.n).min(), n < Statistics.smallSample else { return nil }
        return "n = \(n): indicative only"
    }

    /// What `facts` (one backend's probe) reached of the host.
    func reach(_ facts: [String: String]) -> HostReach {
        let ownKernel = facts["boot_id"].map { $0 != results.host.bootID }
        func sameKernel(_ value: Bool?) -> Bool? {
            guard let value, let ownKernel else { return nil }
            return value && !ownKernel
        }
        var reach = HostReach()
        reach.processes = facts["host_procs"].map { $0 == "yes" }
        if let macs = facts["macs"], let host = results.host.macs {
            reach.interfaces = !Set(macs.split(separator: ",").map(String.init)).isDisjoint(with: host)
        }
        if let canary = results.host.canary {
            reach.file = facts["host_file"].map { $0 == canary }
            if results.host.canaryInKeyring == true { reach.keyring = facts["keyring"].map { $0 == canary } }
        }
        // "absent": this kernel has no /proc/kcore (or none of the /sys files tried): nothing measured.
        reach.kernelMemory = facts["kcore"] == "absent" ? nil : sameKernel(facts["kcore"].map { $0 == "elf" })
        reach.kernelSettings = facts["sys_write"] == "absent" ? nil : sameKernel(facts["sys_write"].map { $0 == "yes" })
        return reach
    }

    public var claims: [Claim] {
        [startClaim, kernelClaim, memoryClaim, spaceClaim, oneAppClaim, hostReachClaim, engineClaim, snapshotClaim]
    }

    /// "crun, runc" / "no VM backend".
    func list(_ names: [String]) -> String { names.joined(separator: ", ") }

    /// The workload the start and memory claims read: `hello`, or in an image bench (where the
    /// user's program is the only workload) `app`.
    var claimWorkload: String { rows["hello"] == nil && rows["app"] != nil ? "app" : "hello" }

    // MARK: 1. Containers start faster than VMs.

    static let startRule = "Compares the median time from the launcher's spawn to the ready marker in `hello` (the total time where a backend has no marker; in an image bench, the image's program `app` and its ready line). Confirmed when every VM backend that ran was slower than the fastest container backend; contradicted when every VM backend was faster; partly when some were. Not measured without a container and a VM backend that ran `hello` (or `app`). Where the host has no hardware virtualisation the VM figures are emulated, and the verdict holds for this host only."

    var startClaim: Claim {
        var claim = Claim(id: "start", claim: "Containers start faster than virtual machines (\"no need for boot up\")", source: "seed 002",
                          rule: Self.startRule, measurement: "—", verdict: .notMeasured, why: "")
        let workload = claimWorkload
        let helloRows = rows[workload] ?? []
        func ready(_ row: Row) -> Double { row.ready?.median ?? row.total.median }
        let containers = helloRows.filter { SandboxClass($0.backend) == .container }
        let vms = helloRows.filter { SandboxClass($0.backend) == .vm }
        guard let fastest = containers.min(by: { ready($0) < ready($1) }), !vms.isEmpty else {
            claim.why = (containers.isEmpty ? "no container backend" : "no VM backend") + " ran `\(workload)`"
            return claim
        }
        let sooner = vms.filter { ready($0) < ready(fastest) }
        claim.measurement = "\(workload), spawn → ready (median): \(fastest.backend.name) \(ms(ready(fastest))) (the fastest container); "
            + vms.map { "\($0.backend.name) \(ms(ready($0))) (\($0.backend.execution))" }.joined(separator: "; ")
        claim.verdict = sooner.isEmpty ? .confirmed : sooner.count == vms.count ? .contradicted : .partly
        var why = sooner.isEmpty ? "every VM backend was slower to ready than \(fastest.backend.name)"
            : "\(list(sooner.map(\.backend.name))) reached ready sooner than \(fastest.backend.name): a microVM with no OS to boot starts in milliseconds"
        if vms.contains(where: { !$0.backend.execution.hasPrefix("hardware") }) {
            why += "; VM figures here are \(results.host.virtualisation) (\(list(vms.filter { !$0.backend.execution.hasPrefix("hardware") }.map(\.backend.name))) not at hardware speed)"
        }
        if let note = smallSampleNote(containers + vms) { why += " (\(note))" }
        claim.why = why
        return claim
    }

    // MARK: 2. Containers share the host's kernel; a VM has its own.

    static let kernelRule = "From the probe's boot_id (the running kernel's identity) against the host's. Confirmed when every container backend's probe reports the host's boot_id and every VM backend's probe another one; contradicted when a container reports another or a VM the host's. Not measured without a probe from at least one container and one VM backend."

    var kernelClaim: Claim {
        var claim = Claim(id: "kernel", claim: "Containers share the host's kernel (and so isolate less); a VM runs its own",
                          source: "seeds 000, 002, 003", rule: Self.kernelRule, measurement: "—", verdict: .notMeasured, why: "")
        let containers = probes.filter { backends(.container).contains($0.backend) }
        let vms = probes.filter { backends(.vm).contains($0.backend) }
        guard !containers.isEmpty, !vms.isEmpty else {
            claim.why = (containers.isEmpty ? "no container backend" : "no VM backend") + " ran the probe"
            return claim
        }
        func shares(_ facts: [String: String]) -> Bool { facts["boot_id"] == results.host.bootID }
        claim.measurement = "probe boot_id against the host's: " + (containers + vms).map {
            "\($0.backend) \(shares($0.facts) ? "the host's" : "its own") (kernel \($0.facts["kernel"] ?? "?"))"
        }.joined(separator: "; ")
        let ownKernelContainers = containers.filter { !shares($0.facts) }.map(\.backend)
        let hostKernelVMs = vms.filter { shares($0.facts) }.map(\.backend)
        if ownKernelContainers.isEmpty && hostKernelVMs.isEmpty {
            claim.verdict = .confirmed
            claim.why = "every container ran on the host's kernel, every VM on its own"
        } else {
            claim.verdict = .contradicted
            claim.why = (ownKernelContainers.isEmpty ? "" : "\(list(ownKernelContainers)) reported a kernel other than the host's. ")
                + (hostKernelVMs.isEmpty ? "" : "\(list(hostKernelVMs)) reported the host's kernel.")
        }
        return claim
    }

    // MARK: 3. VMs take a lot of memory.

    static let memoryRule = "Compares the median peak RSS in `hello` (in an image bench, `app`; the launcher and what it waited for; QEMU too under libvirt) of each VM backend with the largest container backend's. Confirmed when every VM backend used at least 10× that; contradicted when none did; partly when some did. Not measured without the figure for a container and a VM backend."

    var memoryClaim: Claim {
        var claim = Claim(id: "memory", claim: "VMs take a lot of memory; containers little", source: "seeds 001, 002",
                          rule: Self.memoryRule, measurement: "—", verdict: .notMeasured, why: "")
        let workload = claimWorkload
        let helloRows = (rows[workload] ?? []).filter { $0.peakRSS != nil }
        let containers = helloRows.filter { SandboxClass($0.backend) == .container }
        let vms = helloRows.filter { SandboxClass($0.backend) == .vm }
        guard let largest = containers.max(by: { $0.peakRSS!.median < $1.peakRSS!.median }), !vms.isEmpty else {
            claim.why = "no peak RSS from " + (containers.isEmpty ? "a container backend" : "a VM backend") + " in `\(workload)`"
            return claim
        }
        let reference = largest.peakRSS!.median
        claim.measurement = "\(workload), peak RSS (median): \(largest.backend.name) \(Format.bytes(reference)) (the largest container); "
            + vms.map { "\($0.backend.name) \(Format.bytes($0.peakRSS!.median)) (\(Format.fixed($0.peakRSS!.median / reference, 1))×)" }.joined(separator: "; ")
        let big = vms.filter { $0.peakRSS!.median >= 10 * reference }
        claim.verdict = big.isEmpty ? .contradicted : big.count == vms.count ? .confirmed : .partly
        claim.why = big.isEmpty ? "no VM backend used 10× the container's memory"
            : big.count == vms.count ? "every VM backend used at least 10× the container's memory"
            : "\(list(big.map(\.backend.name))) used at least 10× the container's memory, \(list(vms.filter { $0.peakRSS!.median < 10 * reference }.map(\.backend.name))) less: a full QEMU guest costs hundreds of MiB, a microVM's VMM a few MiB plus the guest RAM it touches"
        if let note = smallSampleNote(containers + vms) { claim.why += " (\(note))" }
        return claim
    }

    // MARK: 4. VMs take a lot of space; a container image is 100–200 MB.

    static let kernelArtifact = "guest kernel (bzImage)"
    static let initramfsArtifact = "initramfs (the same image, for VMs)"
    static let rootfsArtifact = "image rootfs (containers' shared lower layer)"
    static let imageLayersArtifact = "image layers"
    static let vmDiskArtifact = "VM root disk (ext4, from the layers)"
    static let spaceRule = "From the disk footprint: what a VM needs to run the image (the guest kernel and the initramfs; in an image bench, the guest kernel and the VM's root disk made from the image) against what a container needs (the image rootfs; in an image bench, the image's layers). Two parts: the VM's artifacts take at least 10× the container's, and the container image is 100–200 MB (10^8 to 2·10^8 bytes). Confirmed when both hold, partly when one does, contradicted when neither does. Not measured when the footprint lacks the container's part, the kernel or the VM's image."

    var spaceClaim: Claim {
        var claim = Claim(id: "space", claim: "VMs take a lot of space; a container image is 100–200 MB", source: "seeds 002, 004",
                          rule: Self.spaceRule, measurement: "—", verdict: .notMeasured, why: "")
        var artifacts = Dictionary(results.footprint.map { ($0.name, Double($0.bytes)) }, uniquingKeysWith: { a, _ in a })
        // An image bench: the image's layers for containers, its root disk for the VM.
        let imageBench = results.footprint.first { $0.name.hasPrefix(Self.imageLayersArtifact) }
        if let imageBench { artifacts[Self.rootfsArtifact] = Double(imageBench.bytes) }
        let vmImage = imageBench == nil ? Self.initramfsArtifact : Self.vmDiskArtifact
        let missing = [Self.rootfsArtifact, Self.kernelArtifact, vmImage].filter { artifacts[$0] == nil }
        guard missing.isEmpty else {
            claim.why = "the footprint has no \(list(missing))"
            return claim
        }
        let rootfs = artifacts[Self.rootfsArtifact]!
        let vm = artifacts[Self.kernelArtifact]! + artifacts[vmImage]!
        claim.measurement = "the same image: \(Format.bytes(rootfs)) as a container's \(imageBench == nil ? "rootfs" : "layers"); \(Format.bytes(vm)) for a VM (kernel \(Format.bytes(artifacts[Self.kernelArtifact]!)) + \(imageBench == nil ? "initramfs" : "root disk") \(Format.bytes(artifacts[vmImage]!))), \(Format.fixed(vm / rootfs, 1))× the \(imageBench == nil ? "rootfs" : "layers")"
        let vmsLarge = vm >= 10 * rootfs
        let imageSized = rootfs >= 100e6 && rootfs <= 200e6
        claim.verdict = vmsLarge && imageSized ? .confirmed : vmsLarge || imageSized ? .partly : .contradicted
        claim.why = (vmsLarge ? "the VM's artifacts take at least 10× the container's" : "the VM's artifacts take less than 10× the container's")
            + "; " + (imageSized ? "the image is within 100–200 MB" : "the image is \(Format.bytes(rootfs)), not 100–200 MB")
            + ": size is the image's, not the technology's; a VM adds its kernel"
        return claim
    }

    // MARK: 5. A container runs one app at a time.

    static let oneAppRule = "From the number of processes the probe saw inside each container backend. Contradicted when one saw two or more running at once (tandem-init as PID 1 and the probe: two programs). Not measured when no container backend ran the probe, or each saw only itself. The probe cannot confirm the claim: that would take a container that refused to start a second process."

    var oneAppClaim: Claim {
        var claim = Claim(id: "one-app", claim: "A container can run only one app at a time (by design)", source: "seed 002",
                          rule: Self.oneAppRule, measurement: "—", verdict: .notMeasured, why: "")
        let containers = probes.filter { backends(.container).contains($0.backend) }
        guard !containers.isEmpty else {
            claim.why = "no container backend ran the probe"
            return claim
        }
        let counts = containers.map { ($0.backend, Int($0.facts["pids"] ?? "") ?? 0) }
        claim.measurement = "processes the probe saw inside: " + counts.map { "\($0.0) \($0.1)" }.joined(separator: "; ")
        let many = counts.filter { $0.1 >= 2 }.map(\.0)
        if many.isEmpty {
            claim.why = "each container's probe saw only itself"
        } else {
            claim.verdict = .contradicted
            claim.why = "\(list(many)) ran two or more processes at once: a container is a process tree; one main process is a convention (Docker's), not a limit"
        }
        return claim
    }

    // MARK: 6. VM apps cannot see the host's; containers can interact with their host.

    static let hostReachRule = "From the probe: what each sandbox reaches of the host: its processes (the bench's stopwatch, a host process), its network interfaces (by hardware address), a file in the bench's host temp directory and a key in root's kernel keyring (both holding a random nonce), the kernel's memory (/proc/kcore readable) and settings (a /sys file opened for writing), the last two only where the kernel is the host's. The VM part holds when no VM backend reached anything; the container part when some container backend reached at least one thing. Confirmed when both hold, partly when one does, contradicted when neither does. Not measured without these facts from a container and a VM backend, or when the bare process (the control, which runs on the host) reached nothing: then the checks themselves failed. Over the network, where measured: a container or VM also reaches the host when its probe read the nonce from the host's loopback-only service or its abstract Unix socket; the host's service on its bridge address answers everything on the bridge by design, and is listed but not counted; the network half counts only when the bare process read the nonce from the host-only services."

    var hostReachClaim: Claim {
        var claim = Claim(id: "host-reach", claim: "Apps in a VM cannot see the host's apps; containers can interact with their host",
                          source: "seeds 002, 004", rule: Self.hostReachRule, measurement: "—", verdict: .notMeasured, why: "")
        let measured = probes.map { ($0.backend, reach($0.facts)) }.filter { $0.1.measured }
        let containers = measured.filter { backends(.container).contains($0.0) }
        let vms = measured.filter { backends(.vm).contains($0.0) }
        guard !containers.isEmpty, !vms.isEmpty else {
            claim.why = "no " + (containers.isEmpty ? "container" : "VM") + " backend's probe reported what it reaches of the host"
            return claim
        }
        if let control = measured.first(where: { backends(.process).contains($0.0) }), control.1.reached.isEmpty {
            claim.why = "the bare process (\(control.0)), which runs on the host, reached nothing of it either: the checks failed"
            return claim
        }
        claim.measurement = (containers + vms).map { name, reach in
            "\(name) reached " + (reach.reached.isEmpty ? "nothing of the host" : list(reach.reached))
        }.joined(separator: "; ")
        let vmsReaching = vms.filter { !$0.1.reached.isEmpty }.map(\.0)
        let containersReaching = containers.filter { !$0.1.reached.isEmpty }.map(\.0)
        let (network, networkWhy) = networkHalf()
        if !network.measurement.isEmpty { claim.measurement += "; over the network: " + network.measurement }
        let vmPart = vmsReaching.isEmpty && network.vms.isEmpty, containerPart = !containersReaching.isEmpty || !network.containers.isEmpty
        claim.verdict = vmPart && containerPart ? .confirmed : vmPart || containerPart ? .partly : .contradicted
        claim.why = (vmsReaching.isEmpty ? "no VM reached anything of the host" : "\(list(vmsReaching)) reached the host")
            + "; " + (!containersReaching.isEmpty ? "\(list(containersReaching)) reached the host (namespaces hide processes, interfaces and files; what a container shares is the kernel)"
                : "no container reached anything of the host")
            + networkWhy
        return claim
    }

    /// The claim's network half (`NetworkReach`): the containers and VMs that reached a host-only
    /// service, what every run reached, and the sentence for "why" ("" when not measured).
    func networkHalf() -> (found: (containers: [String], vms: [String], measurement: String), why: String) {
        let runs = (results.networkReach ?? []).filter { $0.facts != nil }
        guard !runs.isEmpty else { return (([], [], ""), "") }
        let canary = results.host.canary ?? ""
        let measurement = runs.map { run in
            let reached = zip(NetworkReachResult.services, run.reached(canary)).filter { $0.1 == true }.map(\.0.name)
            return "\(run.sandbox) reached " + (reached.isEmpty ? "none of the host's services" : list(reached))
        }.joined(separator: "; ")
        guard let control = runs.first(where: { $0.kind == "process" }), !hostOnlyReached(control).isEmpty else {
            return (([], [], measurement), "; the network half is not counted: the bare process, on the host, did not reach the host's own loopback service or abstract socket (the checks failed)")
        }
        let containers = runs.filter { $0.kind == "container" && !hostOnlyReached($0).isEmpty }.map(\.sandbox)
        let vms = runs.filter { $0.kind == "VM" && !hostOnlyReached($0).isEmpty }.map(\.sandbox)
        var why = "; over the network, " + (containers.isEmpty ? "no container reached the host's loopback service or abstract socket"
            : "\(list(containers)) reached the host's loopback service or abstract socket (the host's own network namespace)")
            + (runs.contains { $0.kind == "VM" } ? (vms.isEmpty ? ", no VM did" : ", and so did \(list(vms))") : ", and no VM's network was measured")
        // Those on the bridge (a run in the host's own namespace reached it too, and is counted above).
        let bridged = runs.filter { $0.kind != "process" && hostOnlyReached($0).isEmpty && $0.reached(canary, service: "net_bridge") == true }.map(\.sandbox)
        if !bridged.isEmpty {
            why += "; the host's service on its bridge address answered \(list(bridged)) alike (offered to that network, not counted)"
        }
        return ((containers, vms, measurement), why)
    }

    // MARK: 7. If the engine goes down, containers stop.

    static let engineRule = "From the manager-kill measurement: each runtime's manager process (the one a user's command or daemon runs for the container) is sent SIGKILL while its container runs. Confirmed when no container survived its manager; contradicted when every one did; partly when some did. Whether the container's exit status still reached anyone is reported beside it. Not measured when no runtime was measured."

    var engineClaim: Claim {
        var claim = Claim(id: "engine-down", claim: "The container engine is a single point of failure: if it goes down, containers stop",
                          source: "seed 004", rule: Self.engineRule, measurement: "—", verdict: .notMeasured, why: "")
        let measured = (results.managerKill ?? []).filter { $0.measured && $0.containerSurvived != nil }
        guard !measured.isEmpty else {
            let failed = (results.managerKill ?? []).map { "\($0.runtime): \($0.note)" }
            claim.why = (failed.isEmpty ? "the bench killed no runtime's manager (no container backend ran, not root, or --no-manager-kill)" : list(failed))
            return claim
        }
        claim.measurement = measured.map {
            "\($0.runtime) (killed \($0.manager)): container \($0.containerSurvived! ? "survived" : "stopped"), exit status \($0.exitStatusCollected == true ? "collected" : "lost")"
        }.joined(separator: "; ")
        let survived = measured.filter { $0.containerSurvived! }.map(\.runtime)
        claim.verdict = survived.isEmpty ? .confirmed : survived.count == measured.count ? .contradicted : .partly
        let lost = measured.filter { $0.containerSurvived! && $0.exitStatusCollected != true }.map(\.runtime)
        claim.why = (survived.isEmpty ? "every container stopped with its manager"
            : survived.count == measured.count ? "every container outlived its manager" : "\(list(survived)) outlived their manager")
            + (lost.isEmpty ? "" : "; what was lost with the manager is the exit status (\(list(lost)))")
            + "; Docker itself is not measured here"
        return claim
    }
}

extension ReportModel {
    // MARK: 8. A VM's snapshot is big; a container's 100–200 MB.

    static let snapshotRule = "From `tandem bench --snapshot`: the median disk a microVM snapshot takes (its memory file's allocated blocks, where untouched guest RAM is a hole, plus its state file) against a container checkpoint's (CRIU) and against 100–200 MB. Confirmed when the VM snapshot is larger than 200 MB and than every container checkpoint; contradicted when it is smaller than 100 MB and than every container checkpoint; partly otherwise. Not measured without both a microVM snapshot and a container checkpoint. A tiny guest touches little of its RAM: its figure shows what a snapshot costs per touched page, not what an application's would."

    var snapshotClaim: Claim {
        var claim = Claim(id: "snapshot", claim: "To back up a VM you snapshot it; a container's snapshot would be 100–200 MB only", source: "seed 004",
                          rule: Self.snapshotRule, measurement: "—", verdict: .notMeasured, why: "")
        guard let table = SnapshotTable(results), !table.disks.isEmpty else {
            claim.why = "no microVM snapshot was measured (tandem bench --snapshot)"
            return claim
        }
        claim.measurement = table.disks.map { "\($0.subject) (\($0.memoryMiB) MiB of RAM): \(Format.bytes($0.bytes)) on disk" }.joined(separator: "; ")
            + " (medians); no container checkpoint"
        claim.why = "no container checkpoint was measured (CRIU; see the notes), so the comparison the claim makes cannot be made here"
        return claim
    }
}
