import Bench

/// Everything a report page shows, computed once from `results.json`.
public struct ReportModel: Sendable {
    public struct Row: Sendable {
        public var backend: BackendInfo
        public var ready: Summary?
        public var total: Summary
        public var peakRSS: Summary?
        public var cpu: Summary?
        /// total / baseline's total, with its bootstrap interval.
        public var ratio: (ratio: Double, low: Double, high: Double)?
        public var readyRatio: (ratio: Double, low: Double, high: Double)?
        public var failures: Int
        public var results: [String]
        /// The workload's own figures (memory/io: MiB/s, fsync ms), medians over the trials.
        public var figures: [(key: String, median: Double)]
    }

    /// Numeric `key=value` fields of result lines, medians per key (counts like n= and mib= left out).
    static func figures(_ lines: [String]) -> [(key: String, median: Double)] {
        var values: [String: [Double]] = [:]
        var order: [String] = []
        for line in lines {
            for word in line.split(separator: " ").dropFirst() {
                let pair = word.split(separator: "=", maxSplits: 1)
                guard pair.count == 2, let value = Double(pair[1]), !["n", "mib", "check", "primes", "sum"].contains(String(pair[0])) else { continue }
                if values[String(pair[0])] == nil { order.append(String(pair[0])) }
                values[String(pair[0]), default: []].append(value)
            }
        }
        return order.map { ($0, Statistics.median(values[$0]!)) }
    }

    /// "write_mib_s 1592 · read_mib_s 14512", or "—".
    public static func describe(_ figures: [(key: String, median: Double)]) -> String {
        figures.isEmpty ? "—" : figures.map { "\($0.key) \(Format.fixed($0.median, $0.median < 100 ? 2 : 0))" }.joined(separator: " · ")
    }

    public var results: BenchResults
    public var baseline: String
    /// workload → one row per backend that ran it.
    public var rows: [String: [Row]]
    /// Backends whose compute results differ from the others'.
    public var computeMismatch: [String]
    /// Cells where every trial failed: "backend × workload: status N".
    public var failedCells: [String]

    public init(_ results: BenchResults, baseline requested: String?) {
        self.results = results
        let ran = Set(results.samples.map(\.backend))
        let baseline = requested ?? (ran.contains("container") ? "container" : results.backends.first { ran.contains($0.name) }?.name ?? "")
        self.baseline = baseline
        var rows: [String: [Row]] = [:]
        var failed: [String] = []
        for workload in results.workloads {
            let base = results.samples.filter { $0.backend == baseline && $0.workload == workload && $0.status == 0 }
            for backend in results.backends where backend.available {
                let samples = results.samples.filter { $0.backend == backend.name && $0.workload == workload }
                let ok = samples.filter { $0.status == 0 }
                guard let total = Statistics.summarize(ok.map(\.totalMs)) else {
                    if let first = samples.first {
                        failed.append("\(backend.name) × \(workload): every trial failed (\(samples.count) trials, status \(first.status))")
                    }
                    continue
                }
                let ready = Statistics.summarize(ok.compactMap(\.readyMs))
                rows[workload, default: []].append(Row(
                    backend: backend, ready: ready, total: total, peakRSS: Statistics.summarize(ok.compactMap { $0.peakRSSBytes.map { Double($0) } }),
                    ratio: Statistics.ratio(ok.map(\.totalMs), to: base.map(\.totalMs)),
                    readyRatio: Statistics.ratio(ok.compactMap(\.readyMs), to: base.compactMap(\.readyMs)),
                    failures: samples.count - ok.count,
                    results: Array(Set(ok.compactMap { $0.result.map(Self.fingerprint) })).sorted(),
                    figures: workload == "compute" ? [] : Self.figures(ok.compactMap(\.result))))
            }
        }
        self.rows = rows
        failedCells = failed
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
