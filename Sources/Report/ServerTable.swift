import Bench

/// The server benchmark as one table both renderers print: per backend, cold start to first
/// response and wrk's requests/s and latency (medians over trials, [p5–p95]), and the cost of
/// isolation — each backend's requests/s ÷ the bare process's.
public struct ServerTable: Sendable {
    /// "Servers: http under load".
    public var title: String
    public var intro: String
    public var header: [String]
    public var rows: [[String]]
    /// The same figures as numbers, one entry per backend in the rows' order (the HTML report's
    /// charts).
    public var series: [Series]

    /// One backend's summaries over its trials (nil: no trial gave that figure).
    public struct Series: Sendable {
        public var backend: String
        /// Tandem's own (its containers, its microVM) rather than a peer or the bare process.
        public var ours: Bool
        /// A VM whose guest code is emulated here (TCG): never to be read as hardware speed.
        public var emulated: Bool
        public var coldStartMs: Summary?
        public var requestsPerSecond: Summary?
        public var latencyP50Ms: Summary?
        public var latencyP99Ms: Summary?
    }

    /// One table per server workload in the results, in the order they ran.
    public static func all(_ results: BenchResults) -> [ServerTable] {
        var order: [String] = []
        for sample in results.servers ?? [] where !order.contains(sample.workload) { order.append(sample.workload) }
        return order.compactMap { ServerTable(results, workload: $0) }
    }

    /// nil when the results have no trials of `workload`.
    public init?(_ results: BenchResults, workload: String) {
        guard let samples = results.servers?.filter({ $0.workload == workload }), !samples.isEmpty, let settings = results.serverSettings else { return nil }
        let execution = results.host.virtualisation
        title = "Servers: \(workload) under load"
        let load = workload == "redis"
            ? "Debian's redis-server, loaded by redis-benchmark's GET test with \(settings.connections) connections, \(settings.redisRequests ?? 0) requests from the host (no p99.9: it does not report one)"
            : "the guest image's `http` (a static HTTP/1.1 server, \(settings.bodyBytes)-byte answers, keep-alive), loaded by wrk with \(settings.connections) connections and \(settings.threads) threads for \(settings.seconds) s from the host"
        intro = "The `\(workload)` workload in each backend: " +
            "**cold start** = spawn of the launcher → the first request answered (a client on the host polls every ~1 ms); then " +
            "\(load): requests/s and latency percentiles, median over trials [p5–p95]. \"÷ process\" is the cost of isolation: the backend's median " +
            "requests/s ÷ the bare process's (higher is better). Load generator and server share this " +
            "host's \(results.host.cpus) CPUs. Containers run natively on this host (virtualisation here: \(execution))."
        header = ["backend", "runs", "trials", "cold start", "requests/s", "÷ process", "p50", "p99", "p99.9", "errors"]
        var order: [String] = []
        for sample in samples where !order.contains(sample.backend) { order.append(sample.backend) }
        // How each backend's code runs: a VM's figures without hardware virtualisation are QEMU's
        // TCG, marked on its row and said, never passed off as what a KVM host gives.
        let emulated = execution != "hardware"
        let isVM = { (name: String) in name.hasPrefix("libvirt") || name.hasPrefix("qemu") || name.contains("microvm") }
        if emulated, order.contains(where: isVM) {
            intro += " VMs here are emulated (no hardware virtualisation: QEMU's TCG; \"runs\" says so on their rows): their figures are not what a KVM host gives."
        }
        // The nested lab's rows (Tandem's microVM and QEMU microvm as L2, the client in L1): compared
        // with each other, never with the host's bare process.
        let inLab = { (name: String) in name.hasSuffix("-lab") }
        if order.contains(where: inLab) {
            intro += " Rows in the nested lab (\"runs\" says so) ran as L2 on L1's kvm-amd, L1 itself under QEMU's TCG, with the client — the same first-response polling and wrk settings — inside L1: compare them with each other (microvm-lab's \"÷\" is ÷ qemu-lab's requests/s), not with the rows measured from this host."
        }
        let labBaseline = samples.filter { $0.backend == "qemu-lab" }.compactMap(\.requestsPerSecond)
        let baseline = samples.filter { $0.backend == "process" }.compactMap(\.requestsPerSecond)
        func cell(_ summary: Summary?, _ format: (Double) -> String) -> String {
            guard let summary else { return "—" }
            return summary.n > 1 ? "\(format(summary.median)) [\(format(summary.p5))–\(format(summary.p95))]" : format(summary.median)
        }
        let rate = { (value: Double) in String(Int(value.rounded())) }
        let micro = { (value: Double) in value >= 1000 ? String(format1: value / 1000) + " ms" : "\(Int(value)) µs" }
        series = order.map { backend in
            let mine = samples.filter { $0.backend == backend }
            return Series(backend: backend, ours: backend.hasPrefix("container") || backend.contains("microvm") || backend.hasPrefix("tandem"),
                          emulated: emulated && isVM(backend),
                          coldStartMs: Statistics.summarize(mine.compactMap(\.coldStartMs)),
                          requestsPerSecond: Statistics.summarize(mine.compactMap(\.requestsPerSecond)),
                          latencyP50Ms: Statistics.summarize(mine.compactMap(\.latencyP50Us).map { $0 / 1000 }),
                          latencyP99Ms: Statistics.summarize(mine.compactMap(\.latencyP99Us).map { $0 / 1000 }))
        }
        rows = order.map { backend in
            let mine = samples.filter { $0.backend == backend }
            let rps = mine.compactMap(\.requestsPerSecond)
            let ratio = inLab(backend)
                ? (backend == "qemu-lab" ? "—" : Statistics.ratio(rps, to: labBaseline).map { String(format2: $0.ratio) + "× qemu-lab" } ?? "—")
                : Statistics.ratio(rps, to: baseline).map { String(format2: $0.ratio) + "×" } ?? "—"
            let failed = mine.filter { $0.requestsPerSecond == nil }.count
            let runs = inLab(backend) ? "nested lab (L1 under TCG; client in L1)" : isVM(backend) ? (emulated ? "TCG (emulated)" : "KVM") : "native"
            return [backend, runs, failed > 0 ? "\(mine.count) (\(failed) failed)" : "\(mine.count)",
                    cell(Statistics.summarize(mine.compactMap(\.coldStartMs)), Format.milliseconds),
                    cell(Statistics.summarize(rps), rate), ratio,
                    cell(Statistics.summarize(mine.compactMap(\.latencyP50Us)), micro),
                    cell(Statistics.summarize(mine.compactMap(\.latencyP99Us)), micro),
                    cell(Statistics.summarize(mine.compactMap(\.latencyP999Us)), micro),
                    String(mine.compactMap(\.errors).reduce(0, +))]
        }
    }
}

extension String {
    init(format1 value: Double) { self = String(Double(Int((value * 10).rounded())) / 10) }
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        self = "\(hundredths / 100)." + (hundredths % 100 < 10 ? "0" : "") + "\(hundredths % 100)"
    }
}
