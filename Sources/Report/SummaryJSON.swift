import Bench
import HostOS

extension ReportModel {
    /// summary.json (schema tandem.report/2): the statistics of every cell, the isolation facts
    /// and the claims' verdicts, for machines.
    public func summaryJSON() -> String {
        func stats(_ summary: Summary?) -> JSON {
            guard let summary else { return .null }
            return .object([("n", .int(Int64(summary.n))), ("median", .double(summary.median)), ("p5", .double(summary.p5)),
                            ("p95", .double(summary.p95)), ("min", .double(summary.min)), ("max", .double(summary.max)),
                            ("ci95", .array([.double(summary.ciLow), .double(summary.ciHigh)]))])
        }
        func ratio(_ value: (ratio: Double, low: Double, high: Double)?) -> JSON {
            value.map { .object([("ratio", .double($0.ratio)), ("ci95", .array([.double($0.low), .double($0.high)]))]) } ?? .null
        }
        let cells: [JSON] = results.workloads.flatMap { workload in
            (rows[workload] ?? []).map { row in
                JSON.object([("workload", .string(workload)), ("backend", .string(row.backend.name)), ("execution", .string(row.backend.execution)),
                             ("ready_ms", stats(row.ready)), ("total_ms", stats(row.total)), ("peak_rss_bytes", stats(row.peakRSS)), ("launcher_cpu_ms", stats(row.cpu)),
                             ("total_vs_baseline", ratio(row.ratio)), ("ready_vs_baseline", ratio(row.readyRatio)),
                             ("failures", .int(Int64(row.failures)))])
            }
        }
        let json: JSON = .object([
            ("schema", .string("tandem.report/2")),
            ("host", .object([("cpu", .string(results.host.cpu)), ("kernel", .string(results.host.kernel)),
                              ("virtualisation", .string(results.host.virtualisation))])),
            ("trials", .int(Int64(results.trials))), ("complete", .bool(results.complete)), ("baseline", .string(baseline)),
            ("cells", .array(cells)),
            ("compute_mismatch", .array(computeMismatch.map { .string($0) })),
            ("isolation", .object(probes.map { ($0.backend, .object($0.facts.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })) })),
            ("manager_kill", .array((results.managerKill ?? []).map { kill in
                .object([("runtime", .string(kill.runtime)), ("manager", .string(kill.manager)), ("measured", .bool(kill.measured)),
                         ("container_survived", kill.containerSurvived.map { .bool($0) } ?? .null),
                         ("exit_status_collected", kill.exitStatusCollected.map { .bool($0) } ?? .null)])
            })),
            ("network_reach", .array((results.networkReach ?? []).map { run in
                .object([("sandbox", .string(run.sandbox)), ("kind", .string(run.kind)), ("status", .int(Int64(run.status)))]
                        + zip(NetworkReachResult.services, run.reached(results.host.canary ?? "")).map { service, reached in
                            (String(service.fact.dropFirst("net_".count)), reached.map { .bool($0) } ?? .null)
                        })
            })),
            ("claims", .array(claims.map { .object([("id", .string($0.id)), ("claim", .string($0.claim)), ("verdict", .string($0.verdict.rawValue)),
                                                   ("measured", .string($0.measurement)), ("why", .string($0.why)), ("rule", .string($0.rule))]) })),
        ])
        return json.serialized(indent: 2) + "\n"
    }
}
