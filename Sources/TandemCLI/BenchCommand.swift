import ArgumentParser
import Bench
import FoundationEssentials
import HostFacts
import HostOS
import Images
import Report
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem bench`: the same workloads in every backend and peer, N trials each, interleaved.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run the same workloads in every backend and peer, N trials each, and write results.json and the report.",
        discussion: """
        Backends: \(BenchCommand.allBackends.joined(separator: ", ")). One that cannot run here is listed \
        in the report with the reason. Every launcher is timed the same way (spawn → ready marker → exit) by \
        a small static stopwatch. results.json is rewritten after every round, so Ctrl-C keeps what was measured.
        """
    )

    static let allBackends = ["tiny-microvm", "linux-microvm", "container", "libvirt", "libvirt-disk", "qemu-microvm", "crun", "runc", "process"]

    @Option(name: .long, help: ArgumentHelp("Comma-separated backends (default: all).", valueName: "list"))
    var backends: String?
    @Option(name: .long, help: ArgumentHelp("Comma-separated workloads: \(Workload.catalog.map(\.name).joined(separator: ", ")); and the server workloads http and redis (cold start to first response, then wrk's or redis-benchmark's requests/s and latency).", valueName: "list"))
    var workloads: String?
    @Option(name: .customLong("server-seconds"), help: ArgumentHelp("With http or redis: how long wrk loads each server trial (default 10; 3 with --quick); redis-benchmark sends 50000 GETs per second given.", valueName: "seconds"))
    var serverSeconds: Int?
    @Option(name: .customLong("server-connections"), help: ArgumentHelp("With http or redis: the load generator's open connections.", valueName: "n"))
    var serverConnections = 16
    @Option(name: .long, help: "Measured trials per backend and workload.")
    var trials: Int?
    @Option(name: .long, help: "Unrecorded warm-up trials first.")
    var warmup: Int?
    @Option(name: .long, help: ArgumentHelp("Per-trial limit.", valueName: "seconds"))
    var timeout: Double = 300
    @Option(name: .long, help: ArgumentHelp("Where results.json and the report go.", valueName: "dir"))
    var out = "reports/latest"
    @Option(name: .long, help: "The backend ratios are taken against (default: container).")
    var baseline: String?
    @Flag(name: .long, help: "3 trials, no warm-up (for make demo and tests).")
    var quick = false
    @Option(name: .long, help: ArgumentHelp("Comma-separated counts of idle sandboxes at once (e.g. 1,10,50): host memory per sandbox.", valueName: "list"))
    var density: String?
    @Option(name: .long, help: ArgumentHelp("Bench a user's image from the store instead of the guest image's workloads: in each way `tandem run --as` runs it (\(ImageSandbox.backends.joined(separator: ", "))).", valueName: "image"))
    var image: String?
    @Option(name: .long, help: ArgumentHelp("With --image: the image store (default /var/lib/tandem).", valueName: "dir"))
    var store: String?
    @Option(name: .long, help: ArgumentHelp("With --image: a regular expression (POSIX extended) for the line the program prints when it is ready; without, only start → exit is timed.", valueName: "regex"))
    var ready: String?
    @Argument(parsing: .postTerminator, help: ArgumentHelp("With --image: the command, after -- (else the image's Entrypoint and Cmd).", valueName: "command"))
    var command: [String] = []
    @Flag(name: .long, help: "After the trials: the tiny microVM (128 MiB, as Firecracker's anchor) cold-booted, snapshotted while it runs and restored, --trials times interleaved: spawn → running and → ready of boot and restore, pause and snapshot time, snapshot size; with linux-microvm on a host without hardware virtualisation, the same for Linux in the nested lab (docs/snapshots.md).")
    var snapshot = false
    @Flag(name: .long, inversion: .prefixedNo, help: "After the trials, SIGKILL each container runtime's manager while its container runs (tandem ctr, tandem-runtime, crun, runc, podman where installed): does the container survive, is its exit status still collected?")
    var managerKill = true
    @Flag(name: .customLong("network-reach"), inversion: .prefixedNo, help: "With the probe workload, as root: serve a nonce on the host's loopback, an abstract Unix socket and the bridge's host address, and run the probe once in each network (the bare process, tandem ctr with its own loopback, on the bridge and with the host's network, VMs on the bridge): what each reaches of the host's network.")
    var networkReach = true

    func run() throws {
        let known = image == nil ? Self.allBackends : ImageSandbox.backends
        let wanted = backends.map { $0.split(separator: ",").map(String.init) } ?? known
        for name in wanted where !known.contains(name) {
            throw fail("--backends: unknown backend \(name)\(image == nil ? "" : " for --image") (known: \(known.joined(separator: ", ")))")
        }
        var chosen: [Workload] = []
        if let image {
            guard workloads == nil else { throw fail("--workloads: not with --image (the image's program is the workload)") }
            guard density == nil else { throw fail("--density: not with --image yet") }
            if let ready {
                var compiled = regex_t()
                guard !ready.isEmpty, !ready.contains("\n"), regcomp(&compiled, ready, REG_EXTENDED | REG_NOSUB) == 0 else {
                    throw fail("--ready \(ready): not a regular expression (POSIX extended) for one line")
                }
                regfree(&compiled)
            }
            do {
                let record = try ImageStore(root: store.map(Files.absolute) ?? ImageStore.defaultRoot).find(image)
                chosen = [Workload("app", command)]
                _ = record
            } catch { throw fail("bench --image: \(error.description)") }
        } else {
            guard store == nil, ready == nil, command.isEmpty else { throw fail("--store, --ready and a command are for --image") }
        }
        var servers: [String] = []
        for name in image != nil ? [] : workloads.map({ $0.split(separator: ",").map(String.init) }) ?? Workload.defaults {
            if ServerSetup.workloads.contains(name) { servers.append(name); continue }
            guard let workload = Workload.named(name) else {
                throw fail("--workloads: unknown workload \(name) (known: \((Workload.catalog.map(\.name) + ServerSetup.workloads).joined(separator: ", ")))")
            }
            chosen.append(workload)
        }
        var tools: [String: String] = [:]
        for name in servers {
            guard let workload = ServerWorkload(rawValue: name) else { continue }
            guard let path = Files.which(workload.tool) else {
                throw fail("--workloads \(name): \(workload.tool) is not installed (Debian's package \(workload == .http ? "wrk" : "redis-tools"); make deps installs it)")
            }
            tools[workload.tool] = path
        }
        if !servers.isEmpty {
            guard (1...3600).contains(serverSeconds ?? 10) else { throw fail("--server-seconds \(serverSeconds ?? 0): from 1 to 3600") }
            guard (1...10_000).contains(serverConnections) else { throw fail("--server-connections \(serverConnections): from 1 to 10000") }
        }
        // lab-time takes the user's ready expression (the environment reaches it through the runner).
        if let ready { setenv("LAB_TIME_READY_REGEX", ready, 1) }
        if let baseline, !wanted.contains(baseline) {
            throw fail("--baseline \(baseline): not among the backends run (\(wanted.joined(separator: ", ")))")
        }
        let trials = self.trials ?? (quick ? 3 : 10)
        let warmup = self.warmup ?? (quick ? 0 : 1)
        guard trials >= 1, trials <= 10_000 else { throw fail("--trials \(trials): must be at least 1") }
        guard warmup >= 0 else { throw fail("--warmup \(warmup): must be 0 or more") }
        if let density, density.split(separator: ",").contains(where: { Int($0).map { $0 < 1 || $0 > 500 } ?? true }) {
            throw fail("--density \(density): counts from 1 to 500, comma-separated")
        }
        try PrivateMountNamespace.enterIfNeeded(for: wanted)

        let facts = HostFacts.probe(toolVersions: true)
        guard let programs = TinyGuests.buildDirectory(named: "lab").map({ $0 + "/lab-time" }), Files.kind(programs) == .regular else {
            throw fail("the bench's stopwatch is missing: run `make guests` (guest-images/build/lab/lab-time)")
        }
        guard let here = Files.currentExecutable().map(Files.directory(of:)) else { throw fail("cannot find my own executable") }
        if Files.kind(out) == .missing { try? Files.makeDirectories(out) }
        guard Files.kind(out) == .directory else { throw fail("--out \(out): cannot create the directory") }
        BenchSetup.sweepWorkDirectories()
        HostCanary.sweep()
        var template = Array("/tmp/tandem-bench.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw fail("mkdtemp: \(SystemError("mkdtemp"))") }
        let work = String(cString: made)
        defer { Files.removeTree(work) }
        try? Files.write(work + "/owner", Array("\(getpid())\n".utf8))
        // What the probe looks for to tell whether a sandbox reaches the host (docs/bench.md).
        let canary: HostCanary
        do { canary = try HostCanary(directory: work) } catch { throw fail("bench: the host canary: \(error)") }
        defer { canary.remove() }
        chosen = chosen.map { $0.name == "probe" ? Workload("probe", [canary.path, canary.keyDescription]) : $0 }

        let environment = BenchEnvironment(
            tandem: here + "/tandem", tandemCLI: here + "/tandem-cli", labTime: programs, kernel: LinuxDefaults.kernel(),
            initramfs: LinuxDefaults.initramfs(), rootfs: CtrRunner.defaultImage(), tinyDirectory: TinyGuests.buildDirectory(named: "tiny"),
            virtualisation: facts.virtualisation.rawValue, workDirectory: work)
        let sandboxes: [any Sandbox] = if let image {
            wanted.map { ImageSandbox(environment: environment, backend: $0, image: image, store: store.map(Files.absolute)) }
        } else {
            BenchSetup.sandboxes(wanted, environment)
        }
        ServerSetup.sweepBridge(environment)
        var results = BenchResults(startedAt: BenchSetup.now(), host: BenchSetup.summary(facts), trials: trials, warmup: warmup,
                                   backends: sandboxes.map(\.info), workloads: chosen.map(\.name))
        // (An image bench's footprint is measured after its trials, below.)
        if image == nil { results.footprint = BenchSetup.footprint(environment) }
        if let image { results.notes.append("the workload is image \(image)'s program\(command.isEmpty ? "" : " (" + command.joined(separator: " ") + ")"); ready = \(ready.map { "its first line matching /\($0)/" } ?? "not timed (no --ready)")") }
        results.host.canary = canary.nonce
        results.host.canaryKey = canary.keyDescription
        switch canary.key {
        case .success: results.host.canaryInKeyring = true
        case .failure(let error):
            results.host.canaryInKeyring = false
            results.notes.append("the probe's keyring check did not run: \(error)")
        }
        if PrivateMountNamespace.entered {
            results.notes.append("every backend ran in a private mount namespace with /sys/fs/cgroup/unified unmounted: crun 1.8 refuses this host's hybrid cgroup layout otherwise")
        }
        for backend in results.backends where !backend.available {
            StandardError.line("bench: \(backend.name): not run — \(backend.reason ?? "")")
        }
        let resultsPath = out + "/results.json"
        let runner = BenchRunner(sandboxes: sandboxes, workloads: chosen, trials: trials, warmup: warmup, timeoutSeconds: timeout,
                                 labTime: programs, outPath: resultsPath, results: results)
        let progress = Progress(terminal: isatty(2) == 1)
        var finished: Bool
        do { finished = try runner.run { done, total, line in progress.update(done, total, line) } } catch {
            throw fail("bench: \(error)")
        }
        progress.finish()
        if let image {
            let available = sandboxes.filter(\.info.available).map(\.name)
            do { try runner.setFootprint(BenchSetup.imageFootprint(image, store: store, backends: available, command: command, environment: environment)) } catch {
                throw fail("bench: \(error)")
            }
        }
        if finished, !servers.isEmpty {
            let settings = ServerSettings(tool: servers.compactMap { ServerWorkload(rawValue: $0)?.tool }.joined(separator: ", "),
                                          connections: serverConnections, threads: 2, seconds: serverSeconds ?? (quick ? 3 : 10), bodyBytes: 13)
            let holder = ServerSetup.holdBridge(environment, needed: wanted.contains { ["container", "crun", "runc", "libvirt"].contains($0) })
            defer { ServerSetup.release(holder, environment) }
            var peers: PeerNetwork?, peersProblem: String?
            if wanted.contains("crun") || wanted.contains("runc") {
                (peers, peersProblem) = PeerNetwork.make(workDirectory: work)
            }
            defer { peers?.remove() }
            var backends: [ServerBackend] = [], notes: [String] = []
            for workload in servers.compactMap(ServerWorkload.init(rawValue:)) {
                let (made, said) = ServerSetup.backends(workload, wanted, environment, peers: peers, peersProblem: peersProblem)
                backends += made
                notes += said
            }
            let held = holder == nil ? [] : ["servers: the bridge tandembr0 was held by an idle container for the whole server benchmark (as Docker's docker0 always exists), so no trial paid for making it"]
            do {
                finished = try runner.runServers(backends, settings: settings, trials: trials, tools: tools, workDirectory: work, notes: notes + held) {
                    StandardError.line("bench: \($0)")
                }
            } catch { throw fail("bench: \(error)") }
            // Tandem's microVM without hardware virtualisation: in the nested lab.
            if wanted.contains("linux-microvm"), facts.virtualisation.rawValue != "hardware" {
                for workload in servers.compactMap(ServerWorkload.init(rawValue:)) where finished {
                    // (The image must carry the server, as for the other VMs.)
                    if let rootfs = environment.rootfs, Files.kind(rootfs + workload.program) == .missing {
                        try? runner.addServerSamples([], notes: ["\(workload.rawValue) × linux-microvm: not run — the guest image has no \(workload.program) (tandem image build --with-redis)"], complete: true)
                        continue
                    }
                    let lab = ServerSetup.labSamples(workload, trials: trials, settings: settings) { StandardError.line("bench: \($0)") }
                    do { try runner.addServerSamples(lab.samples, notes: lab.notes, complete: !lab.interrupted) } catch { throw fail("bench: \(error)") }
                    if lab.interrupted { finished = false }
                }
            }
        }
        if finished, let density {
            let counts = density.split(separator: ",").compactMap { Int($0) }.filter { $0 > 0 }
            do { try runner.runDensity(counts) { StandardError.line($0) } } catch { throw fail("bench: \(error)") }
        }
        if finished, snapshot {
            if wanted.contains("tiny-microvm"), sandboxes.contains(where: { $0.name == "tiny-microvm" && $0.info.available }) {
                do {
                    try runner.runSnapshots(tandemPath: environment.tandem, workDirectory: work, memoryMiB: SnapshotBench.memoryMiB,
                                            notes: [SnapshotBench.containerNote]) { StandardError.line("bench: \($0)") }
                } catch { throw fail("bench: \(error)") }
            } else {
                StandardError.line("bench: --snapshot: the tiny microVM not run — it needs the tiny-microvm backend")
            }
            if wanted.contains("linux-microvm") {
                if facts.virtualisation.rawValue == "hardware" {
                    try? runner.addSnapshotSamples([], notes: ["snapshot × linux-microvm: not run — on a host with hardware virtualisation the bench does not snapshot the Linux microVM yet (tandem vm run --api-sock and tandem vm snapshot do)"], complete: true)
                } else {
                    let lab = SnapshotLab.samples(trials: trials) { StandardError.line("bench: \($0)") }
                    do { try runner.addSnapshotSamples(lab.samples, notes: lab.notes, complete: !lab.interrupted) } catch { throw fail("bench: \(error)") }
                    if lab.interrupted { finished = false }
                }
            }
        }
        if finished, managerKill, getuid() == 0, image == nil {
            var runtimes: [String] = []
            if wanted.contains("container") { runtimes += ["tandem ctr", "tandem-runtime"] }
            runtimes += ["crun", "runc"].filter { wanted.contains($0) }
            if !runtimes.isEmpty { runtimes.append("podman") }
            do {
                try runner.runManagerKill(ManagerKill.subjects(runtimes, environment: environment)) { StandardError.line($0) }
            } catch { throw fail("bench: \(error)") }
        }
        if finished, networkReach, getuid() == 0, image == nil, chosen.contains(where: { $0.name == "probe" }) {
            finished = try BenchSetup.runNetworkReach(runner, wanted: wanted, environment: environment, canary: canary)
        }
        let model = ReportModel(runner.results, baseline: baseline)
        try ReportCommand.write(model, to: out, formats: ["html", "md", "csv", "json"])
        StandardOutput.write(Headline.text(model))
        StandardOutput.write("\nreport: \(out)/index.html, \(out)/report.md; raw: \(resultsPath), \(out)/results.csv\n")
        if !finished { throw ExitCode(130) }
    }
}

/// Progress: a bar with ETA on a terminal, plain lines otherwise (CI logs).
final class Progress {
    let terminal: Bool
    let started = Clock.monotonicNanoseconds()
    init(terminal: Bool) { self.terminal = terminal }

    func update(_ done: Int, _ total: Int, _ line: String) {
        let elapsed = Double(Clock.monotonicNanoseconds() - started) / 1e9
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
        if terminal {
            let width = 30, filled = total > 0 ? width * done / total : 0
            StandardError.write("\r\u{1b}[K[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) trials, \(Int(elapsed)) s elapsed, ETA \(Int(eta)) s  \(line.prefix(50))")
        } else {
            StandardError.line("bench: \(done)/\(total) (\(Int(elapsed)) s) \(line)")
        }
    }

    func finish() { if terminal { StandardError.write("\n") } }
}

/// crun 1.8 refuses the v1/v2 hybrid layout unless the empty cgroup2 mount is hidden
/// (PLATFORM.md). The bench then re-runs itself in a private mount namespace without it — every
/// backend alike, so the comparison stays fair. Done before any thread exists.
enum PrivateMountNamespace {
    static let marker = "TANDEM_BENCH_PRIVATE_MOUNTS"
    static var entered: Bool { getenv(marker) != nil }

    static func enterIfNeeded(for backends: [String]) throws {
        let hybrid = Files.filesystemMagic("/sys/fs/cgroup/unified") == 0x6367_7270
        if entered {
            umount2("/sys/fs/cgroup/unified", 0)
            return
        }
        guard hybrid, backends.contains("crun"), getuid() == 0, let unshare = Files.which("unshare"),
              let executable = Files.currentExecutable() else { return }
        setenv(marker, "1", 1)
        let argv = [unshare, "--mount", "--propagation", "private", "--", executable] + Array(CommandLine.arguments.dropFirst())
        let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(unshare, cArguments)
        unsetenv(marker)  // could not: crun will say why it fails
    }
}

/// The few lines `tandem bench` prints at the end: hello, ready and total per backend.
enum Headline {
    static func text(_ model: ReportModel) -> String {
        var out = "\n\(model.results.host.cpu) · virtualisation \(model.results.host.virtualisation) · \(model.results.trials) trials\n"
        for workload in model.results.workloads {
            guard let rows = model.rows[workload] else { continue }
            out += "\n\(workload):\n"
            for row in rows.sorted(by: { $0.total.median < $1.total.median }) {
                let ready = row.ready.map { Format.milliseconds($0.median) } ?? "—"
                out += "  \(row.backend.name.padding(14)) ready \(ready.padding(9)) total \(Format.milliseconds(row.total.median).padding(9)) \(row.backend.execution)\n"
            }
        }
        return out
    }
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: Swift.max(0, width - count)) }
}
