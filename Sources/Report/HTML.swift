import Bench

#if canImport(Glibc)
import Glibc
#endif

extension ReportModel {
    /// A self-contained page: inline CSS and one inline SVG chart per workload and metric; no
    /// script, no network.
    public func html() -> String {
        var body = "<h1>Tandem: VMs and containers, side by side</h1>\n"
        body += "<p class=honest>\(markdownInline(honesty))\(results.complete ? "" : " <strong>This run was interrupted.</strong>")</p>\n"
        body += "<p>Started \(results.startedAt.htmlEscaped()). Ratios against <code>\(baseline.htmlEscaped())</code>. Bars are medians, whiskers p5–p95, log scale. Colours: <span class=ours>Tandem's</span>, <span class=peer>peers</span>; hatched = emulated (not hardware speed).</p>\n"
        body += "<h2>Backends</h2>\n<table><tr><th>backend</th><th></th><th>sandbox</th><th>runs guest code</th><th>ran?</th></tr>\n"
        for backend in results.backends {
            body += "<tr><td><code>\(backend.name.htmlEscaped())</code></td><td>\(backend.kind)</td><td>\(backend.kindOfSandbox.htmlEscaped())</td><td>\(backend.execution.htmlEscaped())</td><td>\(backend.available ? "yes" : "no — " + (backend.reason ?? "").htmlEscaped())</td></tr>\n"
        }
        body += "</table>\n"
        for workload in results.workloads {
            guard let rows = rows[workload], !rows.isEmpty else { continue }
            let sorted = rows.sorted { $0.total.median < $1.total.median }
            body += "<h2>Workload <code>\(workload.htmlEscaped())</code></h2>\n"
            let readyRows = sorted.compactMap { row in row.ready.map { (row, $0) } }
            if !readyRows.isEmpty { body += chart(title: "spawn → ready marker", rows: readyRows) }
            body += chart(title: "spawn → exit (total)", rows: sorted.map { ($0, $0.total) })
            let hasFigures = rows.contains { !$0.figures.isEmpty }
            body += "<table><tr><th>backend</th><th>ready median [p5–p95]</th><th>total median [p5–p95] (95% CI)</th><th>total min–max</th><th>total ÷ \(baseline.htmlEscaped())</th><th>peak RSS</th><th>CPU (launcher)</th><th>n</th>\(hasFigures ? "<th>its own figures (median)</th>" : "")</tr>\n"
            for row in sorted {
                let ready = row.ready.map { "\(ms($0.median)) [\(ms($0.p5))–\(ms($0.p95))]" } ?? "—"
                body += "<tr><td><code>\(row.backend.name.htmlEscaped())</code><br><small>\(row.backend.execution.htmlEscaped())</small></td><td>\(ready)</td><td>\(ms(row.total.median)) [\(ms(row.total.p5))–\(ms(row.total.p95))] (\(ms(row.total.ciLow))–\(ms(row.total.ciHigh)))</td><td>\(ms(row.total.min))–\(ms(row.total.max))</td><td>\(Format.ratio(row.ratio))</td><td>\(row.peakRSS.map { Format.bytes($0.median) } ?? "—")</td><td>\(row.cpu.map { ms($0.median) } ?? "—")</td><td>\(row.total.n)</td>\(hasFigures ? "<td>\(Self.describe(row.figures).htmlEscaped())</td>" : "")</tr>\n"
            }
            body += "</table>\n"
            if workload == "compute" {
                body += computeMismatch.isEmpty ? "<p>Every backend computed the same answer.</p>\n"
                    : "<p class=bad>Mismatch: \(computeMismatch.joined(separator: ", ").htmlEscaped()) computed a different answer.</p>\n"
            }
        }
        if !probes.isEmpty {
            body += "<h2 id=isolation>Isolation: what a workload sees from inside</h2>\n<p>The probe workload in each backend; <code>process</code> is the host's own view.</p>\n<table class=wide><tr><th>fact</th>"
            body += probes.map { "<th><code>\($0.backend.htmlEscaped())</code></th>" }.joined() + "<th>meaning</th></tr>\n"
            for fact in probeFacts where probes.contains(where: { $0.facts[fact.key] != nil }) {
                body += "<tr><td>\(fact.title)</td>" + probes.map { "<td>\(probeValue($0.facts, fact.key).htmlEscaped())</td>" }.joined()
                    + "<td><small>\(fact.meaning.htmlEscaped())</small></td></tr>\n"
            }
            let reaches = probes.map { reach($0.facts) }
            for (index, fact) in HostReach.facts.enumerated() where reaches.contains(where: \.measured) {
                body += "<tr><td>reaches \(fact.name.htmlEscaped())</td>" + reaches.map { "<td>\(Self.yesNo($0.values[index]))</td>" }.joined()
                    + "<td><small>\(fact.meaning.htmlEscaped())</small></td></tr>\n"
            }
            body += "</table>\n"
        }
        if !networkReachRows.isEmpty {
            body += "<h2 id=network-reach>What a sandbox reaches over the network</h2>\n<p>\(Self.networkReachIntro.htmlEscaped())</p>\n<table><tr>"
                + Self.networkReachHeader.map { "<th>\($0.htmlEscaped())</th>" }.joined() + "</tr>\n"
            for row in networkReachRows {
                body += "<tr><td><code>\(row[0].htmlEscaped())</code></td>" + row.dropFirst().map { "<td>\($0.htmlEscaped())</td>" }.joined() + "</tr>\n"
            }
            body += "</table>\n"
        }
        for servers in ServerTable.all(results) {
            body += "<h2>\(servers.title.htmlEscaped())</h2>\n<p>\(servers.intro.htmlEscaped())</p>\n" + serverCharts(servers) + "<table><tr>"
                + servers.header.map { "<th>\($0.htmlEscaped())</th>" }.joined() + "</tr>\n"
            for row in servers.rows {
                body += "<tr><td><code>\(row[0].htmlEscaped())</code></td>" + row.dropFirst().map { "<td>\($0.htmlEscaped())</td>" }.joined() + "</tr>\n"
            }
            body += "</table>\n"
        }
        if let snapshots = SnapshotTable(results) {
            body += "<h2>\(snapshots.title.htmlEscaped())</h2>\n<p>\(snapshots.intro.htmlEscaped())</p>\n<table><tr>"
                + snapshots.header.map { "<th>\($0.htmlEscaped())</th>" }.joined() + "</tr>\n"
            for row in snapshots.rows { body += "<tr>" + row.map { "<td>\($0.htmlEscaped())</td>" }.joined() + "</tr>\n" }
            body += "</table>\n"
        }
        if let density = results.density, !density.isEmpty {
            body += "<h2>Density: idle sandboxes at once</h2>\n<p>N idle (<code>sleep</code>) sandboxes started together; per sandbox once all are ready: the PSS of its launcher's process tree, and the drop in the host's MemAvailable ÷ N (everything, noisy at small N; libvirt's QEMU is only in this one).</p>\n<table><tr><th>backend</th><th>N</th><th>ready</th><th>PSS per sandbox</th><th>MemAvailable drop per sandbox</th><th>all ready after</th></tr>\n"
            for point in density {
                body += "<tr><td><code>\(point.backend.htmlEscaped())</code></td><td>\(point.count)</td><td>\(point.ready)</td><td>\(Format.bytes(point.pssPerSandbox))</td><td>\(Format.signedBytes(point.bytesPerSandbox))</td><td>\(ms(point.allReadyMs))</td></tr>\n"
            }
            body += "</table>\n"
        }
        if !results.footprint.isEmpty {
            body += "<h2>Disk footprint</h2>\n<table><tr><th>artifact</th><th>size</th><th>used by</th><th>note</th></tr>\n"
            for artifact in results.footprint {
                body += "<tr><td>\(artifact.name.htmlEscaped())</td><td>\(Format.bytes(Double(artifact.bytes)))</td><td>\(artifact.usedBy.joined(separator: ", ").htmlEscaped())</td><td>\(artifact.note.htmlEscaped())</td></tr>\n"
            }
            body += "</table>\n"
        }
        if let kills = results.managerKill, !kills.isEmpty {
            body += "<h2>When the manager dies</h2>\n<p>\(Self.managerKillIntro.htmlEscaped())</p>\n<table><tr><th>runtime</th><th>killed</th><th>container survived</th><th>exit status collected</th><th>reported afterwards</th><th>note</th></tr>\n"
            for kill in kills {
                body += "<tr><td><code>\(kill.runtime.htmlEscaped())</code></td><td>\(kill.manager.htmlEscaped())</td><td>\(Self.yesNo(kill.containerSurvived))</td><td>\(Self.yesNo(kill.exitStatusCollected))</td><td>\(kill.reported.htmlEscaped())</td><td>\(kill.note.htmlEscaped())</td></tr>\n"
            }
            body += "</table>\n"
        }
        let claims = self.claims
        body += "<h2>The seeds' claims, answered</h2>\n<p>Each verdict is computed from the figures above by the rule below the table; a claim whose inputs did not run is not measured here.</p>\n<table><tr><th>claim</th><th>measured here</th><th>verdict</th><th>why</th></tr>\n"
        for claim in claims {
            body += "<tr><td>\(claim.claim.htmlEscaped()) <small>(\(claim.source))</small></td><td>\(claim.measurement.htmlEscaped())</td><td class=\"v-\(claim.verdict == .confirmed ? "yes" : claim.verdict == .contradicted ? "no" : "maybe")\">\(claim.verdict.rawValue)</td><td>\(claim.why.htmlEscaped())</td></tr>\n"
        }
        body += "</table>\n<h3>How each verdict is decided</h3>\n<ul>" + claims.map { "<li><strong>\($0.claim.htmlEscaped())</strong>: \($0.rule.htmlEscaped())</li>" }.joined() + "</ul>\n"
        if !results.notes.isEmpty || !failedCells.isEmpty {
            body += "<h2>Notes</h2>\n<ul>" + (failedCells + results.notes).map { "<li>\($0.htmlEscaped())</li>" }.joined() + "</ul>\n"
        }
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Tandem report</title>
            <style>
            body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1d2330}
            h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #dde;padding-bottom:.2em}
            table{border-collapse:collapse;margin:.8em 0;font-size:.92em}td,th{border:1px solid #dde;padding:.3em .55em;text-align:left;vertical-align:top}
            th{background:#f3f5fa}code{background:#f3f5fa;padding:0 .2em;border-radius:3px;white-space:nowrap}small{color:#5a6275}
            .honest{background:#fff8e1;border-left:4px solid #e0a800;padding:.6em .8em}.bad{color:#b00020;font-weight:bold}
            .ours{color:#1f5fbf;font-weight:bold}.peer{color:#6b7280;font-weight:bold}
            table.wide{font-size:.82em}.v-yes{background:#e6f4ea}.v-no{background:#fde8e8}.v-maybe{background:#f3f4f6}
            svg{display:block;margin:.6em 0}svg text{font:12px system-ui,sans-serif;fill:#1d2330}
            </style></head><body>
            \(body)</body></html>

            """
    }

    /// One bar of a chart: a backend's median and its p5–p95 whisker.
    struct Bar {
        var label: String
        /// Tandem's own (blue) or a peer's (grey).
        var ours: Bool
        /// Guest code emulated here: hatched and labelled, never to be read as hardware speed.
        var emulated: Bool
        var summary: Summary
    }

    /// A chart's axis: times on a log10 scale in milliseconds, or counts (requests/s) on a
    /// linear one from 0, where bar lengths compare as the figures do.
    enum Scale {
        case milliseconds
        case count
    }

    /// One horizontal bar chart of the backends' rows for a workload (times).
    func chart(title: String, rows: [(ReportModel.Row, Summary)]) -> String {
        chart(title: title, bars: rows.map { row, summary in
            Bar(label: row.backend.name, ours: row.backend.kind == "ours",
                emulated: row.backend.execution.contains("emulated") || row.backend.execution.contains("TCG"), summary: summary)
        }, scale: .milliseconds)
    }

    /// One horizontal bar chart: median bars, p5–p95 whiskers.
    func chart(title: String, bars: [Bar], scale: Scale) -> String {
        let labelWidth = 300.0, plotWidth = 620.0, barHeight = 22.0, top = 28.0
        let height = top + Double(bars.count) * (barHeight + 8) + 28
        let values = bars.flatMap { [$0.summary.p5, $0.summary.p95, $0.summary.median] }.filter { $0 > 0 }
        var ticks: [(value: Double, label: String)] = []
        let x: (Double) -> Double
        let valueLabel: (Double) -> String
        switch scale {
        case .milliseconds:
            let lowExponent = floor(log10(values.min() ?? 1)), highExponent = ceil(log10(values.max() ?? 10))
            let span = max(1, highExponent - lowExponent)
            x = { value in labelWidth + plotWidth * (log10(max(value, pow(10, lowExponent))) - lowExponent) / span }
            var exponent = lowExponent
            while exponent <= highExponent {
                ticks.append((pow(10, exponent), Self.tick(exponent)))
                exponent += 1
            }
            valueLabel = Format.milliseconds
        case .count:
            let step = Self.niceStep(values.max() ?? 1)
            let end = step * 4
            x = { value in labelWidth + plotWidth * min(max(value, 0), end) / end }
            ticks = (0...4).map { (step * Double($0), Self.count(step * Double($0))) }
            valueLabel = { String(Int($0.rounded())) }
        }
        var svg = "<svg role=\"img\" aria-label=\"\(title.htmlEscaped())\" width=\"\(Int(labelWidth + plotWidth + 60))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(labelWidth + plotWidth + 60)) \(Int(height))\" xmlns=\"http://www.w3.org/2000/svg\">"
        svg += "<defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#fff\"/><line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#9aa3b5\" stroke-width=\"3\"/></pattern></defs>"
        svg += "<text x=\"0\" y=\"16\" font-weight=\"bold\">\(title.htmlEscaped())</text>"
        for tick in ticks {
            let position = x(tick.value)
            svg += "<line x1=\"\(Format.fixed(position, 1))\" y1=\"\(Int(top - 4))\" x2=\"\(Format.fixed(position, 1))\" y2=\"\(Int(height - 22))\" stroke=\"#e3e6ee\"/>"
            svg += "<text x=\"\(Format.fixed(position, 1))\" y=\"\(Int(height - 8))\" text-anchor=\"middle\">\(tick.label)</text>"
        }
        for (index, bar) in bars.enumerated() {
            let y = top + Double(index) * (barHeight + 8)
            let summary = bar.summary
            let colour = bar.ours ? "#1f5fbf" : "#6b7280"
            svg += "<text x=\"\(Int(labelWidth - 8))\" y=\"\(Format.fixed(y + barHeight * 0.7, 1))\" text-anchor=\"end\">\(bar.label.htmlEscaped())\(bar.emulated ? " (emulated)" : "")</text>"
            svg += "<rect x=\"\(Int(labelWidth))\" y=\"\(Format.fixed(y, 1))\" width=\"\(Format.fixed(max(1, x(summary.median) - labelWidth), 1))\" height=\"\(Int(barHeight))\" fill=\"\(bar.emulated ? "url(#hatch)" : colour)\" stroke=\"\(colour)\"/>"
            svg += "<line x1=\"\(Format.fixed(x(summary.p5), 1))\" y1=\"\(Format.fixed(y + barHeight / 2, 1))\" x2=\"\(Format.fixed(x(summary.p95), 1))\" y2=\"\(Format.fixed(y + barHeight / 2, 1))\" stroke=\"#111\" stroke-width=\"1.5\"/>"
            svg += "<text x=\"\(Format.fixed(x(summary.p95) + 6, 1))\" y=\"\(Format.fixed(y + barHeight * 0.7, 1))\">\(valueLabel(summary.median))</text>"
        }
        return svg + "</svg>\n"
    }

    /// The server benchmark's charts: cold start to first response and p99 latency (times), and
    /// requests/s (a count: bars on a linear axis, longer is better), each for the backends that
    /// have the figure, in the table's order.
    func serverCharts(_ servers: ServerTable) -> String {
        func bars(_ figure: (ServerTable.Series) -> Summary?) -> [Bar] {
            servers.series.compactMap { series in figure(series).map { Bar(label: series.backend, ours: series.ours, emulated: series.emulated, summary: $0) } }
        }
        var charts = ""
        let cold = bars(\.coldStartMs), rate = bars(\.requestsPerSecond), p99 = bars(\.latencyP99Ms)
        if !cold.isEmpty { charts += chart(title: "cold start → first response", bars: cold, scale: .milliseconds) }
        if !rate.isEmpty { charts += chart(title: "requests/s under load (longer is better)", bars: rate, scale: .count) }
        if !p99.isEmpty { charts += chart(title: "latency p99 under load", bars: p99, scale: .milliseconds) }
        return charts
    }

    /// A linear axis's step: 1, 2, 2.5 or 5 × 10^k, so that four steps reach `maximum`.
    static func niceStep(_ maximum: Double) -> Double {
        guard maximum > 0 else { return 1 }
        let raw = maximum / 4
        let magnitude = pow(10, floor(log10(raw)))
        return ([1.0, 2, 2.5, 5, 10].first { $0 * magnitude >= raw } ?? 10) * magnitude
    }

    /// A count on an axis: 0, 500, 25k, 1.5M.
    static func count(_ value: Double) -> String {
        if value >= 1_000_000 { return Format.fixed(value / 1_000_000, value.truncatingRemainder(dividingBy: 1_000_000) == 0 ? 0 : 1) + "M" }
        if value >= 1000 { return Format.fixed(value / 1000, value.truncatingRemainder(dividingBy: 1000) == 0 ? 0 : 1) + "k" }
        return String(Int(value.rounded()))
    }

    /// An axis tick at 10^exponent ms: 0.1 ms, 1 ms, 10 ms, 100 ms, 1 s, 10 s, 100 s.
    static func tick(_ exponent: Double) -> String {
        let value = pow(10, exponent)
        if value >= 1000 { return "\(Int((value / 1000).rounded())) s" }
        if value >= 1 { return "\(Int(value.rounded())) ms" }
        return Format.fixed(value, Int(-exponent)) + " ms"
    }

    /// **bold** → <strong>, the rest escaped.
    func markdownInline(_ text: String) -> String {
        let parts = text.split(separator: "**", omittingEmptySubsequences: false)
        return parts.enumerated().map { index, part in index % 2 == 1 ? "<strong>\(String(part).htmlEscaped())</strong>" : String(part).htmlEscaped() }.joined()
    }
}
