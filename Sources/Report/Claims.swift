import Bench

/// The seeds' claims (../shared/seeds), each with the measurement that tests it on this host and
/// a verdict: confirmed, contradicted, or not measurable here (with why).
public struct Claim: Sendable {
    public enum Verdict: String, Sendable { case confirmed, contradicted, partly, notMeasured = "not measurable here" }
    public var claim: String
    public var source: String
    public var measurement: String
    public var verdict: Verdict
    public var why: String
}

extension ReportModel {
    func ms(_ value: Double) -> String { Format.milliseconds(value) }

    public var claims: [Claim] {
        var claims: [Claim] = []
        let vms = ["tiny-microvm", "linux-microvm", "libvirt", "libvirt-disk", "qemu-microvm"]
        let hostMode = results.host.virtualisation

        // 1. Containers start faster than VMs.
        if let container = row("hello", "container") {
            let vmRows = vms.compactMap { row("hello", $0) }
            let facts = vmRows.map { "\($0.backend.name) \(ms($0.ready?.median ?? $0.total.median)) (\($0.backend.execution))" }
            let containerReady = container.ready?.median ?? container.total.median
            let faster = vmRows.filter { ($0.ready?.median ?? $0.total.median) < containerReady }
            let verdict: Claim.Verdict = vmRows.isEmpty ? .notMeasured : faster.isEmpty ? .confirmed : .partly
            var why = faster.isEmpty ? "every VM here was slower to its ready marker"
                : "\(faster.map(\.backend.name).joined(separator: ", ")) reached ready sooner: a microVM without an OS to boot starts in milliseconds"
            if hostMode != "hardware" { why += "; VM figures here are emulated (\(hostMode) KVM / TCG), not hardware speed" }
            claims.append(Claim(claim: "Containers start faster than virtual machines (\"no need for boot up\")", source: "seed 002",
                                measurement: "hello, launcher spawn → ready marker: container \(ms(containerReady)); " + facts.joined(separator: "; "),
                                verdict: verdict, why: why))
        }

        // 2. Containers share the host's kernel; a VM has its own.
        let probes = Dictionary(probes.map { ($0.backend, $0.facts) }, uniquingKeysWith: { a, _ in a })
        let containerProbe = probes["container"]
        let vmProbe: (String, [String: String])? = vms.compactMap { name in probes[name].map { (name, $0) } }.first
        if let containerProbe {
            let sameKernel = containerProbe["boot_id"] == results.host.bootID
            var measurement = "probe: container boot_id \(sameKernel ? "equals" : "differs from") the host's, kernel \(containerProbe["kernel"] ?? "?")"
            var vmOwn = true
            if let (name, facts) = vmProbe {
                vmOwn = facts["boot_id"] != results.host.bootID
                measurement += "; \(name) boot_id \(vmOwn ? "differs" : "equals"), kernel \(facts["kernel"] ?? "?")"
            }
            claims.append(Claim(claim: "Containers share the host's kernel (and so isolate less); a VM runs its own", source: "seeds 000, 002, 003",
                                measurement: measurement, verdict: sameKernel && vmOwn ? .confirmed : .contradicted,
                                why: "boot_id is the running kernel's identity: one value for the host and every container, another per VM"))
        }

        // 3. VMs take a lot of memory.
        if let container = row("hello", "container") {
            let vmRows = vms.compactMap { row("hello", $0) }.filter { $0.peakRSS != nil }
            if !vmRows.isEmpty {
                let facts = vmRows.map { "\($0.backend.name) \(Format.bytes($0.peakRSS!.median))" }
                let big = vmRows.filter { $0.peakRSS!.median > 10 * (container.peakRSS?.median ?? 1) }
                claims.append(Claim(claim: "VMs take a lot of memory; containers little", source: "seeds 001, 002",
                                    measurement: "peak RSS of the launcher (and QEMU): container \(Format.bytes(container.peakRSS?.median ?? 0)); " + facts.joined(separator: "; "),
                                    verdict: big.isEmpty ? .contradicted : big.count == vmRows.count ? .confirmed : .partly,
                                    why: big.isEmpty ? "no VM here used ten times the container's memory"
                                        : "a full QEMU guest costs hundreds of MiB; a microVM VMM (Tandem's) a few MiB plus the guest RAM it touches"))
            }
        }

        // 4. VMs take a lot of space; a container image is 100–200 MB.
        let artifacts = Dictionary(results.footprint.map { ($0.name, $0.bytes) }, uniquingKeysWith: { a, _ in a })
        if let rootfs = artifacts["image rootfs (containers' shared lower layer)"] {
            let kernel = artifacts["guest kernel (bzImage)"] ?? 0
            let initramfs = artifacts["initramfs (the same image, for VMs)"] ?? 0
            claims.append(Claim(claim: "VMs take a lot of space; a container image is 100–200 MB", source: "seeds 002, 004",
                                measurement: "the same workload image: rootfs \(Format.bytes(Double(rootfs))) for containers; kernel \(Format.bytes(Double(kernel))) + initramfs \(Format.bytes(Double(initramfs))) for VMs; a container's own layer starts empty",
                                verdict: .contradicted,
                                why: "size is the image's, not the technology's: this image is a few MiB either way; a VM adds its kernel (and a disk image when it boots from one)"))
        }

        // 5. A container runs only one app at a time.
        if let containerProbe, let pids = Int(containerProbe["pids"] ?? "") {
            claims.append(Claim(claim: "A container can run only one app at a time (by design)", source: "seed 002",
                                measurement: "probe inside the container saw \(pids) processes (tandem-init as PID 1, and the probe)",
                                verdict: pids > 1 ? .contradicted : .partly,
                                why: "a container is a process tree: one main process is a convention (Docker's), not a limit"))
        }

        // 6. Containers can interact with their host; VM apps cannot see the host's.
        if let containerProbe {
            claims.append(Claim(claim: "Apps in a VM cannot see the host's apps; containers can interact with their host", source: "seed 002",
                                measurement: "probe: container sees \(containerProbe["pids"] ?? "?") processes (max pid \(containerProbe["max_pid"] ?? "?")), interfaces \(containerProbe["netifs"] ?? "?"), hostname \(containerProbe["hostname"] ?? "?") (host: \(results.host.hostname))",
                                verdict: .contradicted,
                                why: "with PID, network and UTS namespaces a container sees none of the host's processes or interfaces; what it shares is the kernel (claim 2)"))
        }

        // 7. The Docker daemon is a single point of failure.
        claims.append(Claim(claim: "The Docker daemon is a single point of failure", source: "seed 004", measurement: "—", verdict: .notMeasured,
                            why: "Tandem's runtime has no daemon (each container has its own monitor; a killed monitor leaves its container running, which `tandem ctr rm` then cleans up — tested); Docker is not installed here"))
        return claims
    }
}
