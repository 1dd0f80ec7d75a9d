import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// One trial of `tandem bench --snapshot`: a cold boot, a snapshot of a running guest, and a
/// restore of that snapshot, back to back (docs/snapshots.md). Times are from the spawn of
/// `tandem` to the VMM's own CLOCK_MONOTONIC timestamps in its `--json` report, so cold boot and
/// restore are timed alike.
public struct SnapshotSample: Codable, Sendable {
    public var subject: String
    public var trial: Int
    public var memoryMiB: Int
    /// Cold boot: spawn → first KVM_RUN, → the guest's first READY.
    public var bootRunningMs: Double?
    public var bootReadyMs: Double?
    /// Restore: spawn → first KVM_RUN of the restored vCPU, → the guest's next READY.
    public var restoreRunningMs: Double?
    public var restoreReadyMs: Double?
    /// Spawn → exit: the whole workload (boot), what was left of it (restore). The Linux
    /// microVM's rows, whose guest signals ready once, before the snapshot.
    public var bootExitMs: Double?
    public var restoreExitMs: Double?
    /// Whether the restore finished the workload with the cold boot's result and answer.
    public var restoreAgreed: Bool?
    /// The control socket's answers: all vCPUs parked; the files written.
    public var pauseMs: Double?
    public var snapshotMs: Double?
    public var memoryBytes: UInt64?
    public var memoryAllocatedBytes: UInt64?
    public var stateBytes: UInt64?
    /// Why a part of the trial did not give its figure.
    public var problem: String?

    public init(subject: String, trial: Int, memoryMiB: Int, bootRunningMs: Double? = nil, bootReadyMs: Double? = nil,
                restoreRunningMs: Double? = nil, restoreReadyMs: Double? = nil, pauseMs: Double? = nil, snapshotMs: Double? = nil,
                memoryBytes: UInt64? = nil, memoryAllocatedBytes: UInt64? = nil, stateBytes: UInt64? = nil, problem: String? = nil,
                bootExitMs: Double? = nil, restoreExitMs: Double? = nil, restoreAgreed: Bool? = nil) {
        self.subject = subject
        self.trial = trial
        self.memoryMiB = memoryMiB
        self.bootRunningMs = bootRunningMs
        self.bootReadyMs = bootReadyMs
        self.restoreRunningMs = restoreRunningMs
        self.restoreReadyMs = restoreReadyMs
        self.pauseMs = pauseMs
        self.snapshotMs = snapshotMs
        self.memoryBytes = memoryBytes
        self.memoryAllocatedBytes = memoryAllocatedBytes
        self.stateBytes = stateBytes
        self.problem = problem
        self.bootExitMs = bootExitMs
        self.restoreExitMs = restoreExitMs
        self.restoreAgreed = restoreAgreed
    }
}

public enum SnapshotBench {
    /// The guest RAM of every trial: Firecracker's restore anchor is a 1 vCPU / 128 MiB guest.
    public static let memoryMiB = 128
    /// Why containers have no checkpoint figures (CRIU) beside the microVM's, with what `criu
    /// check` says on this host (runc's checkpoint, the peer, needs it too).
    public static var containerNote: String {
        var note = "snapshot: containers are not checkpointed: tandem-runtime has no checkpoint/restore (CRIU) yet"
        guard let criu = Files.which("criu") else { return note + "; criu is not installed, so runc checkpoint could not run either" }
        if let check = try? Subprocess.run(criu, ["check"]), check.status != 0 {
            let reason = check.output.split(separator: "\n").first { $0.hasPrefix("Error") } ?? "status \(check.status)"
            note += "; `criu check` fails on this host (\(reason)), so runc checkpoint cannot serve as the peer here either"
        }
        return note
    }

    /// The tiny guest snapshotted: it signals READY after every tick of work, so "the next READY"
    /// after a restore is at most one tick (~1 ms of emulated guest work here) away.
    static let guest = ["--tiny", "ticker", "--arg", "100000000"]
    /// Each run ends on its own after this (the ticker would run for hours): long enough for the
    /// next READY, short enough for many trials.
    static let runSeconds = "0.3"

    /// `trials` interleaved trials with `memoryMiB` of guest RAM (Firecracker's anchor: 128 MiB).
    public static func measure(tandem: String, workDirectory: String, trials: Int, memoryMiB: Int,
                               progress: (String) -> Void) -> [SnapshotSample] {
        var samples: [SnapshotSample] = []
        for trial in 0..<trials {
            var sample = SnapshotSample(subject: "tiny-microvm", trial: trial, memoryMiB: memoryMiB)
            let memory = ["--memory", String(memoryMiB)]
            if let boot = timedRun(tandem, ["vm", "run"] + guest + memory + ["--timeout", runSeconds, "--json"]) {
                sample.bootRunningMs = boot.running
                sample.bootReadyMs = boot.ready
            } else {
                sample.problem = "the cold boot gave no report"
            }
            let directory = workDirectory + "/snapshot-\(trial)"
            switch take(tandem, memory: memory, into: directory, workDirectory: workDirectory) {
            case .success(let taken):
                sample.pauseMs = taken.pauseMs
                sample.snapshotMs = taken.snapshotMs
                sample.memoryBytes = taken.memoryBytes
                sample.memoryAllocatedBytes = taken.allocatedBytes
                sample.stateBytes = taken.stateBytes
                if let restore = timedRun(tandem, ["vm", "restore", directory, "--timeout", runSeconds, "--json"]) {
                    sample.restoreRunningMs = restore.running
                    sample.restoreReadyMs = restore.ready
                } else {
                    sample.problem = "the restore gave no report"
                }
            case .failure(let problem):
                sample.problem = problem.description
            }
            Files.removeTree(directory)
            progress("snapshot: trial \(trial + 1)/\(trials): boot → ready \(format(sample.bootReadyMs)), restore → running \(format(sample.restoreRunningMs)), → ready \(format(sample.restoreReadyMs)), snapshot \(format(sample.snapshotMs))")
            samples.append(sample)
        }
        return samples
    }

    static func format(_ value: Double?) -> String { value.map(Format.milliseconds) ?? "—" }

    /// Runs `tandem ARGS --json` and returns spawn → first_run and → ready, ms.
    static func timedRun(_ tandem: String, _ arguments: [String]) -> (running: Double?, ready: Double?)? {
        let spawned = Clock.monotonicNanoseconds()
        guard let result = try? Subprocess.run(tandem, arguments, mergeStandardError: false),
              let report = try? JSON.parse(result.output.split(separator: "\n").last.map(String.init) ?? ""),
              case .object? = report["monotonic_ns"] else { return nil }
        func since(_ key: String) -> Double? {
            let time: UInt64
            switch report["monotonic_ns"]?[key] {
            case .uint(let value)?: time = value
            case .int(let value)? where value >= 0: time = UInt64(value)
            default: return nil
            }
            return time >= spawned ? Double(time - spawned) / 1e6 : nil
        }
        return (since("first_run"), since("ready"))
    }

    struct Taken {
        var pauseMs: Double?, snapshotMs: Double?
        var memoryBytes: UInt64?, allocatedBytes: UInt64?, stateBytes: UInt64?
    }

    struct Problem: Error, CustomStringConvertible { let description: String }

    /// Boots the ticker with a control socket, pauses it once it is ready, snapshots it into
    /// `directory`, and stops it.
    static func take(_ tandem: String, memory: [String], into directory: String, workDirectory: String) -> Result<Taken, Problem> {
        let socket = workDirectory + "/snapshot.sock"
        guard let child = try? Subprocess.spawnPiped(tandem, ["vm", "run"] + guest + memory + ["--timeout", "60", "--api-sock", socket],
                                                     mergeStandardError: true, defaultSignals: true) else {
            return .failure(Problem(description: "tandem vm run did not start"))
        }
        defer {
            kill(child.pid, SIGTERM)
            _ = try? child.reader.readAll(limit: 1 << 20)
            var status: Int32 = 0
            _ = waitpid(child.pid, &status, 0)
        }
        let deadline = Clock.monotonicNanoseconds() + 10_000_000_000
        while Files.kind(socket) != .other, Clock.monotonicNanoseconds() < deadline { usleep(1000) }
        usleep(20_000)  // well past the first READY
        func answer(_ arguments: [String]) -> JSON? {
            guard let result = try? Subprocess.run(tandem, ["vm"] + arguments, mergeStandardError: false), result.status == 0 else { return nil }
            return try? JSON.parse(result.output)
        }
        guard let paused = answer(["pause", socket]) else { return .failure(Problem(description: "tandem vm pause failed")) }
        guard let written = answer(["snapshot", socket, "--out", directory]) else { return .failure(Problem(description: "tandem vm snapshot failed")) }
        func number(_ json: JSON, _ key: String) -> Double? {
            switch json[key] {
            case .double(let value)?: value
            case .uint(let value)?: Double(value)
            case .int(let value)?: Double(value)
            default: nil
            }
        }
        return .success(Taken(pauseMs: number(paused, "pause_ms"), snapshotMs: number(written, "snapshot_ms"),
                              memoryBytes: number(written, "memory_bytes").map { UInt64($0) },
                              allocatedBytes: number(written, "memory_allocated_bytes").map { UInt64($0) },
                              stateBytes: number(written, "state_bytes").map { UInt64($0) }))
    }
}
