import Bench
import Containers
import HostOS
import NestedLab
#if canImport(Glibc)
import Glibc
#endif

/// The backends `tandem bench --workloads http,redis` runs the server workloads in, and the
/// bridge it holds meanwhile.
enum ServerSetup {
    static let workloads = ServerWorkload.allCases.map(\.rawValue)
    /// The ports the host side uses (high, unlikely to be taken; a taken one fails its trials by name).
    static let processPort: UInt16 = 18_280, publishedPort: UInt16 = 18_281, hostNetworkPort: UInt16 = 18_282

    /// The server's command line inside a sandbox (or on the host) listening on `port`: the
    /// guest image's `/bin/http` or `/bin/redis` (HostPrograms.redisWorkload), each announcing
    /// its addresses — the same programs tandem-init runs in a VM as `tandem.workload=NAME`.
    static func command(_ workload: ServerWorkload, port: UInt16, root: String = "") -> [String] {
        [root + "/bin/" + workload.rawValue, String(port)]
    }

    /// The server backends among `wanted` for `workload`, and a note for each backend that has none yet.
    static func backends(_ workload: ServerWorkload, _ wanted: [String], _ environment: BenchEnvironment,
                         peers: PeerNetwork?, peersProblem: String? = nil) -> ([ServerBackend], [String]) {
        var backends: [ServerBackend] = []
        var notes: [String] = []
        let label = workload.rawValue
        guard let rootfs = environment.rootfs, Files.kind(rootfs + workload.program) == .regular else {
            return ([], ["\(label): not run — the guest image has no \(workload.program) (\(workload == .redis ? "tandem image build --with-redis" : "make image"))"])
        }
        let port = workload.port
        for name in wanted {
            switch name {
            case "process":
                backends.append(ServerBackend(name: "process", workload: workload, description: "the server program on the host's network, no isolation (the baseline)",
                                              argv: command(workload, port: processPort, root: rootfs), target: .fixed("127.0.0.1", processPort)))
            case "container":
                guard getuid() == 0 else { notes.append("\(label) × container: not run — the bridge needs root"); continue }
                let run = [environment.tandem, "ctr", "run"]
                backends.append(ServerBackend(name: "container-bridge", workload: workload, description: "tandem ctr run --net bridge: the client reaches the container's address on tandembr0",
                                              argv: run + ["--net", "bridge", "--"] + command(workload, port: port), target: .announced(port)))
                backends.append(ServerBackend(name: "container-published", workload: workload, description: "tandem ctr run --net bridge -p \(publishedPort):\(port): the client reaches 127.0.0.1:\(publishedPort) (nftables DNAT)",
                                              argv: run + ["--net", "bridge", "-p", "\(publishedPort):\(port)", "--"] + command(workload, port: port),
                                              target: .fixed("127.0.0.1", publishedPort)))
                backends.append(ServerBackend(name: "container-hostnet", workload: workload, description: "tandem ctr run --net host: the host's network, the container's other namespaces",
                                              argv: run + ["--net", "host", "--"] + command(workload, port: hostNetworkPort),
                                              target: .fixed("127.0.0.1", hostNetworkPort)))
            case "crun", "runc":
                guard let runtime = Files.which(name) else { notes.append("\(label) × \(name): not run — \(name) is not installed"); continue }
                guard let peers else {
                    notes.append("\(label) × \(name): not run — no network namespace on the bridge for it" + (peersProblem.map { ": \($0)" } ?? ""))
                    continue
                }
                let bundle = environment.workDirectory + "/\(name)-\(label)"
                mkdir(bundle, 0o755)
                let config = OCIConfig.minimal(rootfs: rootfs, args: command(workload, port: port), hostname: name, networkPath: peers.path)
                guard (try? Files.write(bundle + "/config.json", Array(config.utf8))) != nil else {
                    notes.append("\(label) × \(name): not run — cannot write its bundle")
                    continue
                }
                backends.append(ServerBackend(name: "\(name)-bridge", workload: workload, description: "\(name) run joining a network namespace prepared once like a tandem container's (veth on tandembr0, leased address), as podman prepares one before its runtime runs",
                                              argv: [runtime, "--root", environment.workDirectory + "/\(name)-state", "run", "--bundle", bundle, "tandem-bench-\(getpid())-\(label)"],
                                              target: .announced(port)))
            case "libvirt":
                guard getuid() == 0 else { notes.append("\(label) × libvirt: not run — the bridge needs root"); continue }
                guard environment.kernel != nil else { notes.append("\(label) × libvirt: not run — no kernel (linux-image-cloud-amd64: make deps)"); continue }
                guard Files.kind("/run/libvirt/libvirt-sock") != .missing else {
                    notes.append("\(label) × libvirt: not run — no libvirt daemon (scripts/libvirtd.sh up)")
                    continue
                }
                let emulated = environment.virtualisation != "hardware"
                backends.append(ServerBackend(name: "libvirt-bridge", workload: workload,
                                              description: "tandem vm run --backend libvirt --net bridge: a QEMU guest (machine microvm\(emulated ? ", TCG: emulated, not hardware speed" : ", KVM")) with virtio-net on tandembr0; the client reaches the guest's address",
                                              argv: [environment.tandemCLI, "vm", "run", "--backend", "libvirt", "--net", "bridge", "--workload", workload.rawValue,
                                                     "--cmdline", "tandem.args=\(port)"],
                                              target: .announced(port)))
            case "qemu-microvm":
                guard getuid() == 0 else { notes.append("\(label) × qemu-microvm: not run — the bridge needs root"); continue }
                guard environment.kernel != nil else { notes.append("\(label) × qemu-microvm: not run — no kernel (linux-image-cloud-amd64: make deps)"); continue }
                guard Files.which("qemu-system-x86_64") != nil else { notes.append("\(label) × qemu-microvm: not run — qemu-system-x86_64 is not installed"); continue }
                let emulated = environment.virtualisation != "hardware"
                backends.append(ServerBackend(name: "qemu-bridge", workload: workload,
                                              description: "tandem vm run --backend qemu --net bridge: QEMU's microvm machine run directly (\(emulated ? "TCG: emulated, not hardware speed" : "KVM")), virtio-net on a tap on tandembr0; the client reaches the guest's address",
                                              argv: [environment.tandemCLI, "vm", "run", "--backend", "qemu", "--net", "bridge", "--workload", workload.rawValue,
                                                     "--cmdline", "tandem.args=\(port)"],
                                              target: .announced(port)))
            case "linux-microvm" where environment.virtualisation == "hardware":
                guard getuid() == 0 else { notes.append("\(label) × linux-microvm: not run — the bridge needs root"); continue }
                guard environment.kernel != nil else { notes.append("\(label) × linux-microvm: not run — no kernel (linux-image-cloud-amd64: make deps)"); continue }
                backends.append(ServerBackend(name: "microvm-bridge", workload: workload,
                                              description: "tandem vm run --net bridge: Tandem's microVM (KVM), virtio-net on a tap on tandembr0; the client reaches the guest's address",
                                              argv: [environment.tandem, "vm", "run", "--net", "bridge", "--workload", workload.rawValue,
                                                     "--cmdline", "quiet tandem.args=\(port)"],
                                              target: .announced(port)))
            case "linux-microvm":
                break  // Without hardware virtualisation: in the nested lab (`labSamples`).
            default:
                notes.append("\(label) × \(name): not run — this backend has no server path yet (issue 17)")
            }
        }
        return (backends, notes)
    }

    /// The names of the nested lab's server rows: Tandem's microVM and QEMU microvm, each as L2
    /// in the lab, loaded by a client in L1.
    static let labBackends = (tandem: "microvm-lab", qemu: "qemu-lab")

    /// Without hardware virtualisation, Tandem's microVM serves in the nested lab: one lab run
    /// (`tandem lab nested --workload http|redis --net --load S --compare-qemu --runs TRIALS`)
    /// boots L2 `trials` times with each VMM, interleaved; L1 polls for the first response and
    /// loads each at the bench's connections. Its boots become the `labBackends` rows; the notes
    /// say where they were measured and what went wrong; `interrupted` when Ctrl-C or SIGTERM
    /// stopped the lab (what was measured is kept).
    static func labSamples(_ workload: ServerWorkload, trials: Int, settings: ServerSettings,
                           progress: (String) -> Void) -> (samples: [ServerSample], notes: [String], interrupted: Bool) {
        let label = workload.rawValue
        var options = LabOptions()
        options.workload = label
        options.arguments = String(workload.port)
        options.net = true
        options.loadSeconds = settings.seconds
        options.compareQEMU = true
        options.commandLine = "quiet"
        // Each boot takes its start (a few seconds here), the load and the stop; a wedged L1
        // (nested SVM under TCG is not always stable) must not hold the bench for the default 30 min.
        options.labTimeoutSeconds = 120 + Double(2 * trials) * (Double(settings.seconds) + 60)
        // L1 says nothing while a load runs (the tools' results come at its end): longer than that
        // means it is stuck (after a guest's triple fault it has been, spinning).
        options.silenceSeconds = Double(settings.seconds) + 90
        let load = workload == .http ? "first-response polling and wrk with the same settings"
            : "first-response polling and redis-benchmark with the same connections but \(LabOptions.labRedisRequestsPerSecond) GETs per second of --server-seconds, not 50,000"
        let note = "\(label) × linux-microvm: in the nested lab (L2 on L1's kvm-amd, L1 under QEMU TCG: emulated), beside QEMU microvm as L2 (qemu-lab); the client — \(load) — runs in L1, not on this host, so compare these two rows with each other"
        guard LabOptions.loadConnections == settings.connections, LabOptions.loadThreads == settings.threads else {
            return ([], ["\(label) × linux-microvm: not run — the lab loads with \(LabOptions.loadConnections) connections and \(LabOptions.loadThreads) threads, the bench asked for \(settings.connections) and \(settings.threads)"], false)
        }
        progress("server \(label) linux-microvm: the nested lab, \(trials) boot\(trials == 1 ? "" : "s") per VMM …")
        var samples: [ServerSample] = []
        var notes = [note]
        // L1 itself sometimes stops under this load (nested SVM under TCG): a new L1 boots the
        // VMMs the trials still lack, up to `labAttempts` L1s in all.
        for attempt in 1...labAttempts {
            let done = labPairsDone(samples)
            guard done < trials else { break }
            options.runs = trials - done
            let outcome: NestedLab.Outcome
            switch Result(catching: { () throws(LabError) in try NestedLab.run(options) { line in
                if line.hasPrefix("LAB-TIME "), let boot = NestedLab.parseTime(line) { progress("server \(label) \(boot.vmm) in the lab: " + LabSummary.describe(boot)) }
            } }) {
            case .success(let value): outcome = value
            case .failure(let error): return (samples, notes + ["\(label) × linux-microvm: not run in the nested lab — \(error.description)"], false)
            }
            samples += outcome.boots.map { boot in sample(boot, workload: label, trial: done + boot.index - 1) }
            if outcome.interruptedBy != nil { return (samples, notes, true) }
            guard !outcome.completed || !outcome.errors.isEmpty else { break }
            notes.append("\(label) × linux-microvm: L1 stopped after \(outcome.boots.count) L2 boot\(outcome.boots.count == 1 ? "" : "s") (status \(outcome.l1Status)): "
                         + (outcome.errors.first ?? outcome.consoleTail.suffix(3).joined(separator: " | "))
                         + (attempt < labAttempts ? "; a new L1 boots the trials left" : "; no more attempts"))
        }
        return (labKept(samples, trials: trials), notes, false)
    }

    /// The trials both lab rows have: a new L1 starts there.
    static func labPairsDone(_ samples: [ServerSample]) -> Int {
        [labBackends.tandem, labBackends.qemu].map { name in samples.filter { $0.backend == name }.count }.min() ?? 0
    }

    /// The first `trials` of each lab row: an L1 that stopped inside a pair leaves one VMM a boot
    /// the next L1 boots again.
    static func labKept(_ samples: [ServerSample], trials: Int) -> [ServerSample] {
        [labBackends.tandem, labBackends.qemu].flatMap { name in samples.filter { $0.backend == name }.prefix(trials) }
    }

    /// How many L1s the lab's server rows may take.
    static let labAttempts = 3

    /// One lab boot as a server trial.
    static func sample(_ boot: NestedLab.Boot, workload: String, trial: Int) -> ServerSample {
        var sample = ServerSample(backend: boot.vmm == "tandem" ? labBackends.tandem : labBackends.qemu, workload: workload, trial: trial)
        sample.coldStartMs = boot.figures["server.first_response_ms"]
        sample.requestsPerSecond = boot.figures["server.requests_per_s"]
        sample.latencyP50Us = boot.figures["server.p50_us"]
        sample.latencyP99Us = boot.figures["server.p99_us"]
        sample.latencyP999Us = boot.figures["server.p999_us"]
        sample.errors = boot.figures["server.errors"].map { Int($0) }
        sample.status = boot.status
        if boot.figures["server.ended_during_load"] != nil {
            sample.note = "its VMM ended before the load was done (status \(boot.status)\(boot.status == 126 ? ": the guest crashed" : "")), or the load tool printed nothing: not counted"
        } else if sample.requestsPerSecond == nil {
            sample.note = "not loaded: its server never answered L1"
        }
        return sample
    }

    /// What the bridge holder's name starts with; the bench's pid follows.
    static let holderPrefix = "tandem-bridge-hold-"

    /// An idle container on the bridge for the benchmark's duration (its id), when containers on
    /// the bridge are measured. Named after the bench's pid, so that `sweepHolders` finds it if
    /// the bench is killed.
    static func holdBridge(_ environment: BenchEnvironment, needed: Bool) -> String? {
        guard needed, let result = try? Subprocess.run(environment.tandem, ["ctr", "run", "-d", "--name", holderPrefix + String(getpid()),
                                                                           "--net", "bridge", "--", "/bin/sleep", "1000000"],
                                                       mergeStandardError: false), result.status == 0 else { return nil }
        let id = result.output.split(separator: "\n").first.map(String.init) ?? ""
        return id.isEmpty ? nil : id
    }

    /// What a killed bench left on the bridge: its holder (named after a pid that is gone), and
    /// the leases of the VMs it was running (a VM's lease is stale once its tandem is gone); the
    /// bridge goes with the last lease.
    static func sweepBridge(_ environment: BenchEnvironment) {
        guard getuid() == 0 else { return }
        if let listed = try? Subprocess.run(environment.tandem, ["ctr", "ps"], mergeStandardError: false) {
            for word in listed.output.split(whereSeparator: { $0 == " " || $0 == "\n" }) where word.hasPrefix(holderPrefix) {
                guard let pid = pid_t(word.dropFirst(holderPrefix.count)), pid != getpid(), !ProcessInfoLite.isAlive(pid) else { continue }
                Subprocess.runQuietly(environment.tandem, ["ctr", "rm", "-f", String(word)])
            }
        }
        BridgeNetwork.sweepStale()
    }

    static func release(_ holder: String?, _ environment: BenchEnvironment) {
        guard let holder else { return }
        Subprocess.runQuietly(environment.tandem, ["ctr", "rm", "-f", holder])
    }
}

/// A network namespace on Tandem's bridge for the peers (crun, runc), made once for the server
/// benchmark as podman's netavark prepares one before its runtime runs: a sleeper in a new
/// network namespace (`unshare --net`) holds it, and it gets a lease and `eth0` exactly as a
/// `tandem ctr run --net bridge` container does (`BridgeNetwork`, one engine). The peers' cold
/// start therefore excludes making the namespace and its veth, which Tandem's includes.
final class PeerNetwork {
    let pid: pid_t
    let id: String
    var path: String { "/proc/\(pid)/ns/net" }

    private init(pid: pid_t) {
        self.pid = pid
        // The lease's id names the veth's host end ("tv" + its first 12 characters): the pid
        // first, so that two benches at once get two names.
        id = "peers\(getpid())"
    }

    /// The sleeper in its new network namespace, with a lease and eth0 on the bridge; or why not.
    static func make(workDirectory: String) -> (made: PeerNetwork?, problem: String?) {
        guard let unshare = Files.which("unshare") else { return (nil, "unshare is not installed") }
        let pid: pid_t
        do { (pid, _) = try Subprocess.spawnPiped(unshare, ["--net", "--", "/bin/sleep", "1000000"], mergeStandardError: true, defaultSignals: true) } catch {
            return (nil, error.description)
        }
        let made = PeerNetwork(pid: pid)
        let ours = Files.readLink("/proc/self/ns/net")
        for _ in 0..<200 where Files.readLink(made.path) == ours || Files.readLink(made.path) == nil { usleep(5000) }
        do {
            let lease = try BridgeNetwork.lease(for: made.id, stateDirectory: workDirectory)
            try BridgeNetwork.attach(lease, pid: pid)
        } catch {
            made.remove()
            return (nil, error.description)
        }
        return (made, nil)
    }

    func remove() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        BridgeNetwork.release(id: id)
    }
}
