import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A workload every backend runs from the guest image: tandem-init's `NAME ARGS`.
public struct Workload: Sendable, Equatable {
    public var name: String
    public var arguments: [String]
    public init(_ name: String, _ arguments: [String] = []) {
        self.name = name
        self.arguments = arguments
    }

    public static let catalog: [Workload] = [Workload("hello"), Workload("compute", ["200000"]), Workload("probe"),
                                             Workload("memory", ["64"]), Workload("io", ["16"])]
    /// What `tandem bench` runs when --workloads is not given (memory and io on request).
    public static let defaults = ["hello", "compute", "probe"]
    public static func named(_ name: String) -> Workload? { catalog.first { $0.name == name } }
}

/// What a bench needs from the machine: paths of Tandem's pieces and the host's tools.
public struct BenchEnvironment: Sendable {
    public var tandem: String
    public var tandemCLI: String
    public var labTime: String
    public var kernel: String?
    public var initramfs: String?
    public var rootfs: String?
    public var tinyDirectory: String?
    public var virtualisation: String
    public var workDirectory: String
    public init(tandem: String, tandemCLI: String, labTime: String, kernel: String?, initramfs: String?, rootfs: String?,
                tinyDirectory: String?, virtualisation: String, workDirectory: String) {
        self.tandem = tandem
        self.tandemCLI = tandemCLI
        self.labTime = labTime
        self.kernel = kernel
        self.initramfs = initramfs
        self.rootfs = rootfs
        self.tinyDirectory = tinyDirectory
        self.virtualisation = virtualisation
        self.workDirectory = workDirectory
    }
}

/// One way to run a workload: Tandem's backends and the peers it is measured against. Every
/// sandbox is timed the same way (`Stopwatch`): spawn of its launcher → ready marker → exit.
public protocol Sandbox: Sendable {
    var name: String { get }
    var info: BackendInfo { get }
    /// The launcher's argv for `workload`, or nil when this sandbox cannot run it (with why).
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip>
    /// Adjusts a sample from what the launcher printed (a VMM's own ready timestamp, QEMU's RSS).
    func refine(_ sample: inout Sample, output: [String], startNanoseconds: UInt64)
    /// Called once after all trials (remove bundles, state).
    func finish()
}

public struct SandboxSkip: Error, Sendable { public let reason: String }

extension Sandbox {
    public func refine(_ sample: inout Sample, output: [String], startNanoseconds: UInt64) {}
    public func finish() {}
}

/// Spawns a launcher under lab-time (a small static stopwatch, so wait4's peak RSS is the
/// launcher's and not this process's) and collects the lines that matter.
public enum Stopwatch {
    public struct Measurement {
        public var status: Int
        public var readyMs: Double?
        public var exitMs: Double
        public var maxRSSBytes: UInt64
        /// User + system CPU time of the launcher and the processes it waited for, ms.
        public var cpuMs: Double?
        public var startNanoseconds: UInt64
        /// TANDEM-RESULT/-PROBE lines, the workload's own result line, JSON report lines.
        public var lines: [String]
        /// Ctrl-C or SIGTERM reached the bench during this trial.
        public var interruptedBy: Int32?
        /// The last few other lines the launcher printed (stdout and stderr): why a trial failed.
        public var tail: [String] = []
    }

    /// How many of the launcher's last other lines a measurement keeps.
    static let tailLines = 4

    static let interesting = ["TANDEM-", "compute ", "memory ", "io ", "{\"schema\":", ImageSandbox.qemuPeakLine]

    public static func measure(_ argv: [String], labTime: String, timeoutSeconds: Double) throws(SystemError) -> Measurement {
        var lines: [String] = []
        var tail: [String] = []
        var buffer = LineBuffer()
        let ending = try Subprocess.stream(labTime, ["run"] + argv, timeoutSeconds: timeoutSeconds) { bytes in
            for text in buffer.append(bytes) {
                if interesting.contains(where: { text.hasPrefix($0) }) || text.hasPrefix("LAB-TIME ") {
                    lines.append(text)
                } else {
                    tail.append(String(text.prefix(300)))
                    if tail.count > tailLines { tail.removeFirst() }
                }
            }
        }
        guard let timing = lines.last(where: { $0.hasPrefix("LAB-TIME ") }) else {
            throw SystemError("lab-time", argv.first ?? "", errno: ending.interruptedBy != nil ? EINTR : ETIMEDOUT)
        }
        var fields: [String: String] = [:]
        for word in timing.split(separator: " ").dropFirst() {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        let ready = Double(fields["ready_ms"] ?? "-1") ?? -1
        return Measurement(status: Int(fields["status"] ?? "") ?? -1, readyMs: ready < 0 ? nil : ready,
                           exitMs: Double(fields["exit_ms"] ?? "") ?? 0, maxRSSBytes: (UInt64(fields["maxrss_kib"] ?? "") ?? 0) * 1024,
                           cpuMs: fields["cpu_ms"].flatMap { Double($0) },
                           startNanoseconds: UInt64(Double(fields["start_ns"] ?? "0") ?? 0), lines: lines.filter { !$0.hasPrefix("LAB-TIME ") },
                           interruptedBy: ending.interruptedBy, tail: tail)
    }
}
