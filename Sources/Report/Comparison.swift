import Bench

/// `tandem report --compare A B`: per backend and workload, the change in median total time
/// from run A to run B, with a Mann–Whitney p-value (is it more than noise?): exact for small
/// samples, and marked "indicative only" below `Statistics.smallSample` trials a side.
public enum Comparison {
    public static func markdown(_ a: BenchResults, _ b: BenchResults) -> String {
        var out = "# Tandem: run B against run A\n\nA: \(a.startedAt) (\(a.host.virtualisation)), B: \(b.startedAt) (\(b.host.virtualisation))"
        if a.host.cpu != b.host.cpu || a.host.virtualisation != b.host.virtualisation { out += " — **different hosts or modes: compare with care**" }
        out += "\n\n| workload | backend | total A (median) | total B (median) | change | p (Mann–Whitney) | test | |\n|---|---|---|---|---|---|---|---|\n"
        for workload in a.workloads where b.workloads.contains(workload) {
            for backend in a.backends.map(\.name) {
                let before = a.samples.filter { $0.workload == workload && $0.backend == backend && $0.status == 0 }.map(\.totalMs)
                let after = b.samples.filter { $0.workload == workload && $0.backend == backend && $0.status == 0 }.map(\.totalMs)
                guard !before.isEmpty, !after.isEmpty else { continue }
                let ma = Statistics.median(before), mb = Statistics.median(after)
                let test = Statistics.mannWhitney(before, after)
                let change = (mb - ma) / ma * 100
                let significant = (test?.p ?? 1) < 0.05
                let n = min(before.count, after.count)
                var verdict = significant ? (change < 0 ? "faster" : "slower") : "no clear change"
                if n < Statistics.smallSample { verdict += " (n = \(n): indicative only)" }
                out += "| \(workload) | `\(backend)` | \(Format.milliseconds(ma)) | \(Format.milliseconds(mb)) | \(change >= 0 ? "+" : "")\(Format.fixed(change, 1))% | \(test.map { Format.fixed($0.p, 3) } ?? "—") | \(test?.method.rawValue ?? "—") | \(verdict) |\n"
            }
        }
        return out
    }
}
