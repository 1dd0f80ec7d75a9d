import Bench
import Foundation
@testable import Report
import Testing

/// Rendering from a fixture results.json (a real `tandem bench --quick` run on this host).
@Suite("Report rendering from fixture results")
struct RenderingTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func model() throws -> ReportModel {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("results.json"))
        return ReportModel(try JSONDecoder().decode(BenchResults.self, from: data), baseline: nil)
    }

    @Test("Markdown and CSV match their golden files")
    func golden() throws {
        let model = try Self.model()
        #expect(model.markdown() == (try String(contentsOf: Self.fixtures.appendingPathComponent("report.md"), encoding: .utf8)))
        #expect(model.csv() == (try String(contentsOf: Self.fixtures.appendingPathComponent("results.csv"), encoding: .utf8)))
    }

    @Test("HTML is self-contained, well-formed enough, one SVG per chart")
    func html() throws {
        let model = try Self.model()
        let page = model.html()
        #expect(page.hasPrefix("<!doctype html>"))
        #expect(!page.contains("<script"), "no script")
        #expect(page.components(separatedBy: "http://").count - 1 == page.components(separatedBy: "xmlns=\"http://www.w3.org/2000/svg\"").count - 1,
                "no network references except the SVG namespace")
        #expect(!page.contains("https://"), "no network references")
        let charts = model.results.workloads.reduce(0) { count, workload in
            let rows = model.rows[workload] ?? []
            return count + (rows.isEmpty ? 0 : 1) + (rows.contains { $0.ready != nil } ? 1 : 0)
        }
        #expect(page.components(separatedBy: "<svg ").count - 1 == charts)
        #expect(page.components(separatedBy: "</svg>").count - 1 == charts)
        for tag in ["table", "tr", "td", "th", "h2", "p", "small", "code"] {
            let opened = page.components(separatedBy: "<\(tag)>").count + page.components(separatedBy: "<\(tag) ").count - 2
            #expect(opened == page.components(separatedBy: "</\(tag)>").count - 1, "<\(tag)> balanced")
        }
    }

    @Test("the isolation matrix and the claims come from the probe and the footprint")
    func isolationAndClaims() throws {
        let model = try Self.model()
        let probes = Dictionary(model.probes.map { ($0.backend, $0.facts) }, uniquingKeysWith: { a, _ in a })
        #expect(probes["container"]?["boot_id"] == model.results.host.bootID)
        #expect(probes["libvirt"]?["boot_id"] != model.results.host.bootID)
        let claims = Dictionary(model.claims.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(claims["kernel"]?.verdict == .confirmed, "the fixture has container and libvirt probes")
        // This results file predates the reach facts and the manager-kill measurement.
        #expect(claims["host-reach"]?.verdict == .notMeasured)
        #expect(claims["engine-down"]?.verdict == .notMeasured)
        #expect(model.computeMismatch.isEmpty)
    }

    @Test("--compare: a clear change is flagged, noise is not")
    func compare() throws {
        var a = try Self.model().results
        var b = a
        b.samples = b.samples.map { sample in var s = sample; if s.backend == "runc" { s.totalMs *= 3 }; return s }
        a.samples = a.samples.filter { $0.backend == "runc" || $0.backend == "crun" }
        let text = Comparison.markdown(a, b)
        #expect(text.contains("| hello | `runc` |"))
        #expect(text.contains("+200.0%"))
    }
}

/// The server benchmark's charts in the HTML report, from the fixture's results with server
/// trials added (three backends, the VM's emulated).
@Suite("Report: the server benchmark's charts")
struct ServerChartTests {
    static func sample(_ backend: String, _ trial: Int, rps: Double, p99: Double, cold: Double) throws -> ServerSample {
        let json = """
            {"backend":"\(backend)","workload":"http","trial":\(trial),"requestsPerSecond":\(rps),"latencyP50Us":\(p99 / 4),
             "latencyP99Us":\(p99),"coldStartMs":\(cold),"errors":0}
            """
        return try JSONDecoder().decode(ServerSample.self, from: Data(json.utf8))
    }

    @Test("the nested lab's rows: marked as such, microvm-lab's ratio taken against qemu-lab (not the host's process), the intro says where the client ran")
    func labRows() throws {
        let data = try Data(contentsOf: RenderingTests.fixtures.appendingPathComponent("results.json"))
        var results = try JSONDecoder().decode(BenchResults.self, from: data)
        results.servers = try (0..<3).flatMap { trial in
            [try Self.sample("process", trial, rps: 90_000, p99: 900, cold: 1.4),
             try Self.sample("microvm-lab", trial, rps: 1_500, p99: 25_000, cold: 3_400),
             try Self.sample("qemu-lab", trial, rps: 2_000, p99: 20_000, cold: 7_500)]
        }
        results.serverSettings = ServerSettings(tool: "wrk", connections: 16, threads: 2, seconds: 10, bodyBytes: 13)
        let table = try #require(ServerTable(results, workload: "http"))
        let rows = Dictionary(uniqueKeysWithValues: table.rows.map { ($0[0], $0) })
        #expect(rows["microvm-lab"]?[1] == "nested lab (L1 under TCG; client in L1)")
        #expect(rows["microvm-lab"]?[5] == "0.75× qemu-lab", "\(rows["microvm-lab"] ?? [])")
        #expect(rows["qemu-lab"]?[5] == "—", "a lab row is never divided by the host's process")
        #expect(rows["process"]?[5] == "1.00×")
        #expect(table.intro.contains("with the client — the same first-response polling and wrk settings — inside L1"))
        #expect(table.series.first { $0.backend == "microvm-lab" }?.emulated == true, "hatched as emulated in the charts")
    }

    static func page() throws -> String {
        let data = try Data(contentsOf: RenderingTests.fixtures.appendingPathComponent("results.json"))
        var results = try JSONDecoder().decode(BenchResults.self, from: data)
        results.servers = try (0..<3).flatMap { trial in
            [try sample("process", trial, rps: 86_000 + Double(trial) * 1000, p99: 900, cold: 1.4),
             try sample("container-bridge", trial, rps: 96_000 + Double(trial) * 1000, p99: 1100, cold: 6.5),
             try sample("libvirt-bridge", trial, rps: 12_000 + Double(trial) * 1000, p99: 9000, cold: 2170)]
        }
        results.serverSettings = ServerSettings(tool: "wrk", connections: 16, threads: 2, seconds: 10, bodyBytes: 13)
        return ReportModel(results, baseline: nil).html()
    }

    /// The SVG whose aria-label is `title`.
    static func svg(_ page: String, _ title: String) -> String? {
        guard let start = page.range(of: "<svg role=\"img\" aria-label=\"\(title)\"") else { return nil }
        guard let end = page.range(of: "</svg>", range: start.upperBound..<page.endIndex) else { return nil }
        return String(page[start.lowerBound..<end.upperBound])
    }

    /// Each bar's (width, fill) in order.
    static func bars(_ svg: String) -> [(width: Double, fill: String)] {
        svg.components(separatedBy: "<rect x=\"300\"").dropFirst().compactMap { rest in
            guard let width = rest.components(separatedBy: "width=\"").dropFirst().first?.split(separator: "\"").first,
                  let fill = rest.components(separatedBy: "fill=\"").dropFirst().first?.split(separator: "\"").first else { return nil }
            return (Double(width) ?? -1, String(fill))
        }
    }

    @Test("cold start, requests/s and p99 charts: requests/s bars on a linear axis from 0 in proportion to the medians, Tandem's blue, peers grey, the emulated VM hatched and labelled")
    func charts() throws {
        let page = try Self.page()
        let cold = try #require(Self.svg(page, "cold start → first response"), "no cold start chart")
        let p99 = try #require(Self.svg(page, "latency p99 under load"), "no p99 chart")
        let rate = try #require(Self.svg(page, "requests/s under load (longer is better)"), "no requests/s chart")
        for chart in [cold, p99, rate] {
            #expect(chart.contains(">process<") && chart.contains(">container-bridge<") && chart.contains(">libvirt-bridge (emulated)<"), "\(chart)")
        }
        let bars = Self.bars(rate)
        try #require(bars.count == 3, "\(rate)")
        // Medians 87000, 97000, 13000 requests/s: lengths in the same proportions.
        #expect(abs(bars[1].width / bars[0].width - 97.0 / 87.0) < 0.01, "\(bars)")
        #expect(abs(bars[2].width / bars[0].width - 13.0 / 87.0) < 0.01, "\(bars)")
        #expect(bars[0].fill == "#6b7280" && bars[1].fill == "#1f5fbf" && bars[2].fill == "url(#hatch)", "\(bars)")
        // The axis starts at 0 and its last tick is past the largest whisker (98000).
        #expect(rate.contains("text-anchor=\"middle\">0</text>"), "\(rate)")
        #expect(rate.contains(">100k</text>"), "\(rate)")
        // Times stay on the log axis: the VM's 2.17 s cold start is labelled as such.
        #expect(cold.contains(">2.17 s<") || cold.contains(">2170 ms<") || cold.contains(">2.2 s<"), "\(cold)")
    }

    @Test("niceStep: four steps reach the maximum with a round step")
    func niceStep() {
        #expect(ReportModel.niceStep(98_000) == 25_000)
        #expect(ReportModel.niceStep(13_000) == 5_000)
        #expect(ReportModel.niceStep(4) == 1)
        #expect(ReportModel.niceStep(0) == 1)
    }
}
