import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Runs every workload in every available sandbox, trials interleaved (each round visits every
/// pair in a new order, so machine noise spreads evenly), and rewrites `results.json` after
/// every round: an interrupted bench keeps what it measured.
public final class BenchRunner {
    let sandboxes: [any Sandbox]
    let workloads: [Workload]
    let trials: Int
    let warmup: Int
    let timeoutSeconds: Double
    let labTime: String
    let outPath: String
    public private(set) var results: BenchResults

    public init(sandboxes: [any Sandbox], workloads: [Workload], trials: Int, warmup: Int, timeoutSeconds: Double, labTime: String,
                outPath: String, results: BenchResults) {
        self.sandboxes = sandboxes
        self.workloads = workloads
        self.trials = trials
        self.warmup = warmup
        self.timeoutSeconds = timeoutSeconds
        self.labTime = labTime
        self.outPath = outPath
        self.results = results
    }

    /// Runs the bench; `progress(done, total, line)` after each trial. Returns false if interrupted.
    @discardableResult
    public func run(progress: (Int, Int, String) -> Void) throws -> Bool {
        let runnable = sandboxes.filter { $0.info.available }
        var pairs: [(any Sandbox, Workload)] = []
        for workload in workloads {
            for sandbox in runnable {
                switch sandbox.command(for: workload, trial: 0) {
                case .success: pairs.append((sandbox, workload))
                case .failure(let skip): results.notes.append("\(sandbox.name) × \(workload.name): not run — \(skip.reason)")
                }
            }
        }
        defer { runnable.forEach { $0.finish() } }
        var generator = SeededGenerator(seed: 20_261_123)
        let total = (warmup + trials) * pairs.count
        var done = 0
        for round in 0..<(warmup + trials) {
            pairs.shuffle(using: &generator)
            for (sandbox, workload) in pairs {
                guard case .success(let argv) = sandbox.command(for: workload, trial: round) else { continue }
                let measurement: Stopwatch.Measurement
                do {
                    measurement = try Stopwatch.measure(argv, labTime: labTime, timeoutSeconds: timeoutSeconds)
                } catch {
                    if error.errno == EINTR { try save(); return false }
                    results.notes.append("\(sandbox.name) × \(workload.name) round \(round): \(error)")
                    done += 1
                    continue
                }
                if measurement.interruptedBy != nil { try save(); return false }
                done += 1
                let warm = round < warmup
                var sample = Sample(backend: sandbox.name, workload: workload.name, trial: round - warmup, status: measurement.status,
                                    readyMs: measurement.readyMs, totalMs: measurement.exitMs, peakRSSBytes: measurement.maxRSSBytes,
                                    launcherCPUMs: measurement.cpuMs,
                                    result: measurement.lines.first { line in ["compute ", "memory ", "io "].contains { line.hasPrefix($0) } },
                                    probe: nil)
                if let probe = measurement.lines.first(where: { $0.hasPrefix("TANDEM-PROBE ") }) {
                    sample.probe = Sample.probeFacts(probe)
                }
                sandbox.refine(&sample, output: measurement.lines, startNanoseconds: measurement.startNanoseconds)
                if !warm { results.samples.append(sample) }
                if sample.status != 0, !measurement.tail.isEmpty {
                    // What the launcher said last: a failed trial's reason, kept where a reader looks.
                    results.notes.append("\(sandbox.name) × \(workload.name) \(warm ? "warm-up " : "")round \(round): status \(sample.status); "
                                         + "it printed last: " + measurement.tail.joined(separator: " | "))
                }
                let ready = sample.readyMs.map(Format.milliseconds) ?? "—"
                progress(done, total, "\(warm ? "warm-up " : "")\(sandbox.name) \(workload.name): ready \(ready), total \(Format.milliseconds(sample.totalMs)), status \(sample.status)")
            }
            try save()
        }
        results.complete = true
        try save()
        return true
    }

    /// `--workloads http`: the server benchmark (`ServerBench`), saved with the rest.
    /// Returns false if Ctrl-C or SIGTERM cut it short (what was measured is saved).
    public func runServers(_ backends: [ServerBackend], settings: ServerSettings, trials: Int, tools: [String: String], workDirectory: String,
                           notes: [String], progress: (String) -> Void) throws -> Bool {
        results.notes += notes
        results.serverSettings = settings
        let (samples, interruptedBy) = ServerBench.run(backends, settings: settings, trials: trials, tools: tools, workDirectory: workDirectory,
                                                       progress: progress)
        results.servers = samples
        if interruptedBy != nil { results.complete = false }
        try save()
        return interruptedBy == nil
    }

    /// Server trials measured elsewhere (the nested lab's), added to the server benchmark's.
    public func addServerSamples(_ samples: [ServerSample], notes: [String], complete: Bool) throws {
        results.servers = (results.servers ?? []) + samples
        results.notes += notes
        if !complete { results.complete = false }
        try save()
    }

    /// `--density`: for every backend that supports it, N idle sandboxes at once for each N.
    public func runDensity(_ counts: [Int], progress: (String) -> Void) throws {
        var points: [DensityPoint] = []
        for sandbox in sandboxes where sandbox.info.available && Density.supported.contains(sandbox.name) {
            for count in counts {
                progress("density: \(count) × \(sandbox.name) …")
                if let point = Density.measure(sandbox, count: count, timeoutSeconds: max(timeoutSeconds, 60)) {
                    points.append(point)
                    progress("density: \(count) × \(sandbox.name): \(point.ready) ready, \(Int(point.bytesPerSandbox / 1024)) KiB of host memory each")
                }
            }
        }
        results.density = points
        try save()
    }

    /// `--snapshot`: the tiny microVM cold-booted, snapshotted and restored, `trials` times,
    /// interleaved; with `tandem` at `tandemPath` and RAM `memoryMiB`.
    public func runSnapshots(tandemPath: String, workDirectory: String, memoryMiB: Int, notes: [String], progress: (String) -> Void) throws {
        results.snapshots = (results.snapshots ?? []) + SnapshotBench.measure(tandem: tandemPath, workDirectory: workDirectory, trials: trials, memoryMiB: memoryMiB, progress: progress)
        results.notes += notes
        try save()
    }

    /// Snapshot trials measured elsewhere (the Linux microVM's, in the nested lab).
    public func addSnapshotSamples(_ samples: [SnapshotSample], notes: [String], complete: Bool) throws {
        results.snapshots = (results.snapshots ?? []) + samples
        results.notes += notes
        if !complete { results.complete = false }
        try save()
    }

    /// Each subject's manager killed while its container runs (`ManagerKill`).
    public func runManagerKill(_ subjects: [ManagerKill.Subject], progress: (String) -> Void) throws {
        var measured: [ManagerKillResult] = []
        ManagerKill.sweep(subjects)
        for subject in subjects {
            progress("manager kill: \(subject.runtime) …")
            let result = ManagerKill.measure(subject)
            progress("manager kill: \(subject.runtime): " + (result.measured
                ? "container \(result.containerSurvived == true ? "survived" : "stopped"), exit status \(result.exitStatusCollected == true ? "collected" : "lost") (\(result.reported))"
                : "not measured: \(result.note)"))
            measured.append(result)
        }
        results.managerKill = measured
        try save()
    }

    /// Each subject's probe run once in its network (`NetworkReach`), the host's services up.
    /// Returns false if Ctrl-C or SIGTERM cut it short (what was measured is saved).
    public func runNetworkReach(_ subjects: [NetworkReach.Subject], notes: [String], progress: (String) -> Void) throws -> Bool {
        results.notes += notes
        var measured: [NetworkReachResult] = []
        defer { results.networkReach = measured }
        for subject in subjects {
            progress("network reach: \(subject.sandbox) …")
            let (result, interrupted) = NetworkReach.measure(subject, labTime: labTime, timeoutSeconds: timeoutSeconds)
            if interrupted {
                results.networkReach = measured
                results.complete = false
                try save()
                return false
            }
            let reached = zip(NetworkReachResult.services, result.reached(results.host.canary ?? "")).filter { $0.1 == true }.map(\.0.name)
            progress("network reach: \(subject.sandbox): status \(result.status); "
                     + (result.facts == nil ? result.note : reached.isEmpty ? "reached none of the host's services" : "reached " + reached.joined(separator: ", ")))
            measured.append(result)
        }
        results.networkReach = measured
        try save()
        return true
    }

    /// The footprint measured after the trials (an image bench's VM disk exists once a libvirt
    /// trial made it; the container's own layer is measured from a run of the program).
    public func setFootprint(_ footprint: [Artifact]) throws {
        results.footprint = footprint
        try save()
    }

    func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(results)
        try Files.write(outPath + ".partial", Array(data))
        guard rename(outPath + ".partial", outPath) == 0 else { throw SystemError("rename", outPath) }
    }
}

/// A small deterministic generator (SplitMix64): the same shuffles on every run.
public struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
