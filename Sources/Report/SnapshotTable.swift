import Bench

/// `tandem bench --snapshot` as one table both renderers print: each figure's median and
/// [p5–p95] over the trials, cold boot beside restore.
public struct SnapshotTable: Sendable {
    public var title = "Snapshots: cold boot against restore"
    public var intro: String
    public var header = ["figure", "trials", "median", "p5–p95"]
    public var rows: [[String]]
    /// Medians the claims read (nil: not measured).
    public var restoreReadyMedian: Double?
    public var bootReadyMedian: Double?
    public var diskMedian: Double?

    /// nil when the results hold no snapshot trial.
    public init?(_ results: BenchResults) {
        guard let samples = results.snapshots, !samples.isEmpty else { return nil }
        let emulated = results.host.virtualisation != "hardware"
        intro = "The tiny microVM (`ticker`, \(samples[0].memoryMiB) MiB of RAM, 1 vCPU) cold-booted, then booted with a control socket, paused and snapshotted once it ran, and restored from that snapshot; \(samples.count) trials, interleaved. Times run from the spawn of `tandem` to the VMM's own timestamps: running is the first KVM_RUN, ready the guest's next READY signal (it sends one after every tick of work: ~1 ms of guest time on this emulated host). Disk is the memory file's allocated blocks (untouched and zero pages are holes) plus the state file."
            + (emulated ? " Guest code is emulated on this host (\(results.host.virtualisation)): the VMM's part is real, the guest's work is not hardware speed." : "")
            + " Anchor: Firecracker restores a 1 vCPU / 128 MiB guest in about 3–30 ms on hardware hosts."
        func summary(_ values: [Double?]) -> Summary? { Statistics.summarize(values.compactMap { $0 }) }
        func row(_ name: String, _ values: [Double?], _ show: (Double) -> String) -> [String] {
            guard let figure = summary(values) else { return [name, "0", "—", "—"] }
            return [name, String(figure.n), show(figure.median), "\(show(figure.p5))–\(show(figure.p95))"]
        }
        let disk: [Double?] = samples.map { sample in
            guard let allocated = sample.memoryAllocatedBytes, let state = sample.stateBytes else { return nil }
            return Double(allocated + state)
        }
        let ratio: [Double?] = samples.map { sample in
            guard let restore = sample.restoreReadyMs, let boot = sample.bootReadyMs, boot > 0 else { return nil }
            return restore / boot
        }
        rows = [
            row("cold boot: spawn → running", samples.map(\.bootRunningMs), Format.milliseconds),
            row("cold boot: spawn → ready", samples.map(\.bootReadyMs), Format.milliseconds),
            row("restore: spawn → running", samples.map(\.restoreRunningMs), Format.milliseconds),
            row("restore: spawn → next ready", samples.map(\.restoreReadyMs), Format.milliseconds),
            row("restore ÷ cold boot (to ready)", ratio, { Format.fixed($0, 2) + "×" }),
            row("pause (all vCPUs parked)", samples.map(\.pauseMs), Format.milliseconds),
            row("snapshot written", samples.map(\.snapshotMs), Format.milliseconds),
            row("memory file (apparent: the guest's RAM)", samples.map { sample in sample.memoryBytes.map { Double($0) } }, Format.bytes),
            row("memory file (allocated on disk)", samples.map { sample in sample.memoryAllocatedBytes.map { Double($0) } }, Format.bytes),
            row("state file", samples.map { sample in sample.stateBytes.map { Double($0) } }, Format.bytes),
        ]
        restoreReadyMedian = summary(samples.map(\.restoreReadyMs))?.median
        bootReadyMedian = summary(samples.map(\.bootReadyMs))?.median
        diskMedian = summary(disk)?.median
        for problem in Set(samples.compactMap(\.problem)).sorted() { rows.append(["problem", "", problem, ""]) }
    }
}
