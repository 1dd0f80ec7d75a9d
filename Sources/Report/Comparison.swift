import Bench

/// `tandem report --compare A B`: per backend and workload, the change in median total time
/// from run A to run B, with a Mann–Whitney p-value (is it more than noise?).
public enum Comparison {
    public static func markdown(_ a: BenchResults, _ b: BenchResults) -> String {
        var out = "# Tandem: run B against run A\n\nA: \(a.startedAt) (\(a.host.virtualisation)), B: \(b.startedAt) (\(b.host.virtualisation))"
        if a.host.cpu != b.host.cpu || a.host.virtualisation != b.host.virtualisation { out += " — **different hosts or modes: compare with care**" }
        out += "\n\n| workload | backend | total A (median) | total B (median) | change | p (Mann–Whitney) | |\n|---|---|---|---|---|---|---|\n"
        for workload in a.workloads where b.workloads.contains(workload) {
            for backend in a.backends.map(\.name) {
                let before = a.samples.filter { $0.workload == workload && $0.backend == backend && $0.status == 0 }.map(\.totalMs)
                let after = b.samples.filter { $0.workload == workload && $0.backend == backend && $0.status == 0 }.map(\.totalMs)
                guard !before.isEmpty, !after.isEmpty else { continue }
                let ma = Statistics.median(before), mb = Statistics.median(after)
                let p = Statistics.mannWhitneyP(before, after)
                let change = (mb - ma) / ma * 100
                let significant = (p ?? 1) < 0.05
                out += "| \(workload) | `\(backend)` | \(Format.milliseconds(ma)) | \(Format.milliseconds(mb)) | \(change >= 0 ? "+" : "")\(Format.fixed(change, 1))% | \(p.map { Format.fixed($0, 3) } ?? "—") | \(significant ? (change < 0 ? "faster" : "slower") : "no clear change") |\n"
            }
        }
        return out
    }
}
