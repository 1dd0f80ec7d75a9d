import FoundationEssentials

/// `results.json` (schema tandem.bench/1): everything a bench measured, raw — one sample per
/// trial — plus the facts needed to read it honestly. `tandem report` needs nothing else.
/// Documented in docs/bench.md.
public struct BenchResults: Codable, Sendable {
    public var schema = "tandem.bench/1"
    public var startedAt: String
    public var host: HostSummary
    public var trials: Int
    public var warmup: Int
    public var backends: [BackendInfo]
    public var workloads: [String]
    public var samples: [Sample]
    public var footprint: [Artifact]
    /// `--density`: N idle sandboxes at once per backend.
    public var density: [DensityPoint]?
    /// `--snapshot`: cold boot against snapshot and restore, per trial (`SnapshotBench`).
    public var snapshots: [SnapshotSample]?
    /// Each container runtime's manager process killed while its container runs (seed 004).
    public var managerKill: [ManagerKillResult]?
    /// What each sandbox's probe reached of the host's network (`NetworkReach`).
    public var networkReach: [NetworkReachResult]?
    /// `--workloads http`: each server trial (cold start to first response, wrk's throughput and
    /// latency), and how the load was driven.
    public var servers: [ServerSample]?
    public var serverSettings: ServerSettings?
    public var notes: [String]
    /// False while the bench runs (or when it was interrupted): the file is rewritten after each round.
    public var complete: Bool

    public init(startedAt: String, host: HostSummary, trials: Int, warmup: Int, backends: [BackendInfo], workloads: [String]) {
        self.startedAt = startedAt
        self.host = host
        self.trials = trials
        self.warmup = warmup
        self.backends = backends
        self.workloads = workloads
        samples = []
        footprint = []
        notes = []
        complete = false
    }
}

public struct HostSummary: Codable, Sendable {
    public var cpu: String
    public var cpus: Int
    public var kernel: String
    /// hardware / emulated / none (tandem host).
    public var virtualisation: String
    public var virtualisationExplanation: String
    public var cgroups: String
    public var tools: [String: String]
    public var bootID: String
    public var hostname: String
    /// Hardware addresses of the host's network interfaces (loopback's left out): a probe that
    /// lists one of them sees the host's own interface.
    public var macs: [String]?
    /// The nonce of the bench's `HostCanary`: a probe that prints it read a host file or the host's
    /// kernel keyring.
    public var canary: String?
    /// Whether the nonce is in root's kernel keyring too (add_key may be refused).
    public var canaryInKeyring: Bool?
    /// The description of the canary's key (`HostCanary.keyDescription`).
    public var canaryKey: String?
    public init(cpu: String, cpus: Int, kernel: String, virtualisation: String, virtualisationExplanation: String, cgroups: String,
                tools: [String: String], bootID: String, hostname: String, macs: [String]? = nil, canary: String? = nil) {
        self.cpu = cpu
        self.cpus = cpus
        self.kernel = kernel
        self.virtualisation = virtualisation
        self.virtualisationExplanation = virtualisationExplanation
        self.cgroups = cgroups
        self.tools = tools
        self.bootID = bootID
        self.hostname = hostname
        self.macs = macs
        self.canary = canary
    }
}

public struct BackendInfo: Codable, Sendable {
    public var name: String
    /// "ours" (Tandem's) or "peer" (what Tandem is measured against).
    public var kind: String
    public var kindOfSandbox: String
    public var available: Bool
    /// Why it did not run, when it did not.
    public var reason: String?
    /// How this backend runs guest code here: hardware KVM, emulated KVM, TCG, or native (containers, processes).
    public var execution: String
    public var description: String
}

public struct Sample: Codable, Sendable {
    public var backend: String
    public var workload: String
    public var trial: Int
    public var status: Int
    /// Launcher spawn → the ready marker (or the VMM's ready port), ms.
    public var readyMs: Double?
    /// Launcher spawn → its exit, ms.
    public var totalMs: Double
    /// Peak resident set of the launcher or the largest process it waited for (wait4), plus for
    /// libvirt its QEMU process (not the launcher's child), bytes.
    public var peakRSSBytes: UInt64?
    /// CPU time (user + system) of the launcher and what it waited for, ms: the host's cost of
    /// running the sandbox (QEMU under libvirt is the daemon's child and not in it).
    public var launcherCPUMs: Double?
    /// The workload's own result line (compute: "compute n=… primes=… sum=…").
    public var result: String?
    /// The probe's facts (probe workload).
    public var probe: [String: String]?

    /// The facts of a `TANDEM-PROBE key=value …` line.
    public static func probeFacts(_ line: String) -> [String: String] {
        Dictionary(line.split(separator: " ").dropFirst().compactMap { word -> (String, String)? in
            let pair = word.split(separator: "=", maxSplits: 1)
            return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
        }, uniquingKeysWith: { $1 })
    }
}

public struct Artifact: Codable, Sendable {
    public var name: String
    public var bytes: UInt64
    /// Backends that use it (counted once however many sandboxes share it).
    public var usedBy: [String]
    public var note: String
    public init(name: String, bytes: UInt64, usedBy: [String], note: String) {
        self.name = name
        self.bytes = bytes
        self.usedBy = usedBy
        self.note = note
    }
}

/// One container runtime's manager process SIGKILLed while its container runs: does the container
/// go on, and does its exit status still reach anyone? (Seed 004: "if the engine goes down,
/// containers stop".) `Sources/Bench/ManagerKill.swift` measures it; docs/bench.md says how.
public struct ManagerKillResult: Codable, Sendable {
    /// The runtime as a user calls it: "tandem ctr", "tandem-runtime", "crun", "runc", "podman".
    public var runtime: String
    /// The process that was killed, and its role.
    public var manager: String
    /// Whether the measurement ran to the end (else `note` says what failed; the flags are nil).
    public var measured: Bool
    /// The container's init was still alive after its manager was gone, and went on to finish
    /// its work (it exits by itself with `expectedStatus` a moment later).
    public var containerSurvived: Bool?
    /// That exit status could still be read afterwards, from where the runtime reports it.
    public var exitStatusCollected: Bool?
    public var expectedStatus: Int
    /// What the runtime reported afterwards (its state command, or the waiting caller), verbatim.
    public var reported: String
    public var note: String
    public init(runtime: String, manager: String, measured: Bool, containerSurvived: Bool?, exitStatusCollected: Bool?,
                expectedStatus: Int, reported: String, note: String) {
        self.runtime = runtime
        self.manager = manager
        self.measured = measured
        self.containerSurvived = containerSurvived
        self.exitStatusCollected = exitStatusCollected
        self.expectedStatus = expectedStatus
        self.reported = reported
        self.note = note
    }
}

/// One sandbox's probe run in one network: what it reached of the host's network services
/// (`NetworkReach`; docs/bench.md, "What a sandbox reaches over the network").
public struct NetworkReachResult: Codable, Sendable {
    /// How it was run: "process", "tandem ctr --net bridge", "tandem vm run --backend qemu --net bridge".
    public var sandbox: String
    /// "process", "container" or "VM".
    public var kind: String
    public var network: String
    public var execution: String
    public var status: Int
    /// The probe's `net_loopback`, `net_abstract` and `net_bridge`: what each host service
    /// answered (the canary's nonce when reached), "none", or "unrouted"; nil when the probe did
    /// not run to the end (`note` says why).
    public var facts: [String: String]?
    public var note: String
    public init(sandbox: String, kind: String, network: String, execution: String, status: Int, facts: [String: String]?, note: String) {
        self.sandbox = sandbox
        self.kind = kind
        self.network = network
        self.execution = execution
        self.status = status
        self.facts = facts
        self.note = note
    }
}

extension NetworkReachResult {
    /// The host services the probe tries: its fact, and what the report calls it.
    public static let services: [(fact: String, name: String)] = [
        ("net_loopback", "the host's loopback service"), ("net_abstract", "the host's abstract Unix socket"),
        ("net_bridge", "the host's service on its bridge address"),
    ]

    /// For each of `services`, whether the probe read `canary` from it (nil: not measured).
    public func reached(_ canary: String) -> [Bool?] {
        Self.services.map { reached(canary, service: $0.fact) }
    }

    /// Whether the probe read `canary` from the service whose fact is `fact` ("net_bridge").
    public func reached(_ canary: String, service fact: String) -> Bool? {
        facts?[fact].map { $0 == canary }
    }
}
