import Bench
import HostOS
import NestedLab

/// `tandem bench --snapshot` for the Linux microVM where the host has no hardware
/// virtualisation: `tandem lab nested --snapshot` with `compute`, one cold boot and one
/// snapshot-then-restore per trial (docs/snapshots.md). Running is from each run's own report
/// (VMM start → first KVM_RUN), the other times from lab-time's spawn in L1.
enum SnapshotLab {
    static let subject = "linux-microvm (nested lab)"
    static let computeSize = "20000000"

    static func samples(trials: Int, progress: (String) -> Void) -> (samples: [SnapshotSample], notes: [String], interrupted: Bool) {
        var options = LabOptions()
        options.workload = "compute"
        options.arguments = computeSize
        options.commandLine = "quiet"
        options.runs = trials
        options.snapshot = true
        options.labTimeoutSeconds = 300 + Double(trials) * 60
        options.silenceSeconds = 120
        progress("snapshot: linux-microvm in the nested lab, \(trials) cold boot\(trials == 1 ? "" : "s") and restore\(trials == 1 ? "" : "s") …")
        let outcome: NestedLab.Outcome
        switch Result(catching: { () throws(LabError) in try NestedLab.run(options) { line in
            if line.hasPrefix("LAB-TIME "), let boot = NestedLab.parseTime(line) { progress("snapshot: \(boot.vmm) in the lab: " + LabSummary.describe(boot)) }
        } }) {
        case .success(let value): outcome = value
        case .failure(let error): return ([], ["snapshot × linux-microvm: not run in the nested lab — \(error.description)"], false)
        }
        let note = "snapshot × linux-microvm: in the nested lab (L2 on L1's kvm-amd, L1 under QEMU TCG: emulated), workload compute \(computeSize); running is VMM start → first KVM_RUN from each run's own report, the rest from lab-time's spawn in L1; a restore's guest signalled ready before the snapshot, so its end is timed instead"
        let summary = LabSummary(outcome)
        let cold = outcome.boots.filter { $0.vmm == "tandem" }, restores = outcome.boots.filter { $0.vmm == "tandem-restore" }
        var samples: [SnapshotSample] = []
        for (trial, boot) in cold.enumerated() {
            var sample = SnapshotSample(subject: subject, trial: trial, memoryMiB: options.memoryMiB,
                                        bootRunningMs: LabSummary.firstRun(boot), bootReadyMs: boot.readyMs, bootExitMs: boot.exitMs)
            if trial < restores.count {
                let restore = restores[trial]
                sample.restoreRunningMs = LabSummary.firstRun(restore)
                sample.restoreExitMs = restore.exitMs
                sample.restoreAgreed = summary.agrees(restore)
                let answer = restore.snapshot.flatMap { try? JSON.parse($0) }
                sample.snapshotMs = LabSummary.number(answer, "snapshot_ms")
                sample.memoryBytes = LabSummary.number(answer, "memory_bytes").map { UInt64($0) }
                sample.memoryAllocatedBytes = LabSummary.number(answer, "memory_allocated_bytes").map { UInt64($0) }
                sample.stateBytes = LabSummary.number(answer, "state_bytes").map { UInt64($0) }
            } else {
                sample.problem = "no restore after this cold boot (the lab stopped: \(outcome.errors.joined(separator: "; ")))"
            }
            samples.append(sample)
        }
        return (samples, [note] + outcome.errors.map { "snapshot × linux-microvm: the lab said: \($0)" }, outcome.interruptedBy != nil)
    }
}
