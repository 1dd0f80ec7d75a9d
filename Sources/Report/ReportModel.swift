import Bench

/// Everything a report page shows, computed once from `results.json`.
public struct ReportModel: Sendable {
    public struct Row: Sendable {
        public var backend: BackendInfo
        public var ready: Summary?
        public var total: Summary
        public var peakRSS: Summary?
        /// total / baseline's total, with its bootstrap interval.
        public var ratio: (ratio: Double, low: Double, high: Double)?
        public var readyRatio: (ratio: Double, low: Double, high: Double)?
        public var failures: Int
        public var results: [String]
    }

    public var results: BenchResults
    public var baseline: String
    /// workload → one row per backend that ran it.
    public var rows: [String: [Row]]
    /// Backends whose compute results differ from the others'.
    public var computeMismatch: [String]

    public init(_ results: BenchResults, baseline requested: String?) {
        self.results = results
        let ran = Set(results.samples.map(\.backend))
        let baseline = requested ?? (ran.contains("container") ? "container" : results.backends.first { ran.contains($0.name) }?.name ?? "")
        self.baseline = baseline
        var rows: [String: [Row]] = [:]
        for workload in results.workloads {
            let base = results.samples.filter { $0.backend == baseline && $0.workload == workload && $0.status == 0 }
            for backend in results.backends where backend.available {
                let samples = results.samples.filter { $0.backend == backend.name && $0.workload == workload }
                let ok = samples.filter { $0.status == 0 }
                guard let total = Statistics.summarize(ok.map(\.totalMs)) else { continue }
                let ready = Statistics.summarize(ok.compactMap(\.readyMs))
                rows[workload, default: []].append(Row(
                    backend: backend, ready: ready, total: total, peakRSS: Statistics.summarize(ok.compactMap { $0.peakRSSBytes.map { Double($0) } }),
                    ratio: Statistics.ratio(ok.map(\.totalMs), to: base.map(\.totalMs)),
                    readyRatio: Statistics.ratio(ok.compactMap(\.readyMs), to: base.compactMap(\.readyMs)),
                    failures: samples.count - ok.count,
                    results: Array(Set(ok.compactMap { $0.result.map(Self.fingerprint) })).sorted()))
            }
        }
        self.rows = rows
        let computeRows = rows["compute"] ?? []
        let common = Dictionary(grouping: computeRows.flatMap(\.results), by: { $0 }).max { $0.value.count < $1.value.count }?.key
        computeMismatch = computeRows.filter { row in !row.results.isEmpty && row.results != [common ?? ""] }.map(\.backend.name)
    }

    /// "compute n=… primes=… sum=…" without the timing: what must match across backends.
    static func fingerprint(_ line: String) -> String {
        line.split(separator: " ").filter { !$0.hasPrefix("ms=") }.joined(separator: " ")
    }

    /// The probe's facts per backend (first successful probe sample).
    public var probes: [(backend: String, facts: [String: String])] {
        results.backends.compactMap { backend in
            results.samples.first { $0.backend == backend.name && $0.workload == "probe" && $0.probe != nil }.map { (backend.name, $0.probe!) }
        }
    }

    public func row(_ workload: String, _ backend: String) -> Row? { rows[workload]?.first { $0.backend.name == backend } }
}
