import Bench

/// `tandem bench --snapshot` as one table both renderers print: each figure's median and
/// [p5–p95] over the trials, cold boot beside restore.
public struct SnapshotTable: Sendable {
    public var title = "Snapshots: cold boot against restore"
    public var intro: String
    public var header = ["figure", "trials", "median", "p5–p95"]
    public var rows: [[String]]

    /// nil when the results hold no snapshot trial.
    public init?(_ results: BenchResults) {
        guard let all = results.snapshots, !all.isEmpty else { return nil }
        let emulated = results.host.virtualisation != "hardware"
        var subjects: [String] = []
        for sample in all where !subjects.contains(sample.subject) { subjects.append(sample.subject) }
        intro = "Each trial, interleaved: a cold boot, a boot with a control socket paused and snapshotted once it runs, and a restore of that snapshot. The tiny microVM (`ticker`, 1 vCPU) runs here; times run from the spawn of `tandem` to the VMM's own timestamps: running is the first KVM_RUN, ready the guest's next READY signal (it sends one after every tick of work: ~1 ms of guest time on this emulated host). The Linux microVM, where listed, runs `compute` in the nested lab: running is VMM start → first KVM_RUN from each run's report, ready and exit from the spawn in L1; its restore's guest signalled ready before the snapshot, so what was left of the workload is timed to the exit. Disk is the memory file's allocated blocks (untouched and zero pages are holes) plus the state file."
            + (emulated ? " Guest code is emulated on this host (\(results.host.virtualisation)): the VMM's part is real, the guest's work is not hardware speed." : "")
            + " Anchor: Firecracker restores a 1 vCPU / 128 MiB guest in about 3–30 ms on hardware hosts."
        func summary(_ values: [Double?]) -> Summary? { Statistics.summarize(values.compactMap { $0 }) }
        func row(_ name: String, _ values: [Double?], _ show: (Double) -> String) -> [String]? {
            guard let figure = summary(values) else { return nil }
            return [name, String(figure.n), show(figure.median), "\(show(figure.p5))–\(show(figure.p95))"]
        }
        rows = []
        for subject in subjects {
            let samples = all.filter { $0.subject == subject }
            let prefix = "\(subject), \(samples[0].memoryMiB) MiB: "
            let disk: [Double?] = samples.map { sample in
                guard let allocated = sample.memoryAllocatedBytes, let state = sample.stateBytes else { return nil }
                return Double(allocated + state)
            }
            let ratio: [Double?] = samples.map { sample in
                guard let restore = sample.restoreReadyMs, let boot = sample.bootReadyMs, boot > 0 else { return nil }
                return restore / boot
            }
            let agreed = samples.compactMap(\.restoreAgreed)
            rows += [
                row(prefix + "cold boot → running", samples.map(\.bootRunningMs), Format.milliseconds),
                row(prefix + "cold boot → ready", samples.map(\.bootReadyMs), Format.milliseconds),
                row(prefix + "cold boot → exit", samples.map(\.bootExitMs), Format.milliseconds),
                row(prefix + "restore → running", samples.map(\.restoreRunningMs), Format.milliseconds),
                row(prefix + "restore → next ready", samples.map(\.restoreReadyMs), Format.milliseconds),
                row(prefix + "restore → exit", samples.map(\.restoreExitMs), Format.milliseconds),
                row(prefix + "restore ÷ cold boot (to ready)", ratio, { Format.fixed($0, 2) + "×" }),
                row(prefix + "pause (all vCPUs parked)", samples.map(\.pauseMs), Format.milliseconds),
                row(prefix + "snapshot written", samples.map(\.snapshotMs), Format.milliseconds),
                row(prefix + "memory file (apparent: the guest's RAM)", samples.map { sample in sample.memoryBytes.map { Double($0) } }, Format.bytes),
                row(prefix + "memory file (allocated on disk)", samples.map { sample in sample.memoryAllocatedBytes.map { Double($0) } }, Format.bytes),
                row(prefix + "state file", samples.map { sample in sample.stateBytes.map { Double($0) } }, Format.bytes),
            ].compactMap { $0 }
            if !agreed.isEmpty { rows.append([prefix + "restores that finished with the cold boot's answer", String(agreed.count), "\(agreed.filter { $0 }.count) of \(agreed.count)", ""]) }
            for problem in Set(samples.compactMap(\.problem)).sorted() { rows.append([prefix + "problem", "", problem, ""]) }
            if let median = summary(disk)?.median { disks.append((subject, samples[0].memoryMiB, median)) }
        }
    }

    /// Each subject's median snapshot on disk (memory file allocated + state file).
    public var disks: [(subject: String, memoryMiB: Int, bytes: Double)] = []
}
