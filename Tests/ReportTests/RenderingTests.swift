import Bench
import Foundation
import Report
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
