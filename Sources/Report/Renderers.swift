import Bench
import HostOS

/// What each isolation fact means, for the matrix.
let probeFacts: [(key: String, title: String, meaning: String)] = [
    ("pids", "processes visible", "how many processes the workload can see (the host has many)"),
    ("max_pid", "highest PID", "a small number means a PID namespace of its own"),
    ("hostname", "hostname", "its own UTS namespace (or machine) names it differently"),
    ("kernel", "kernel release", "which kernel it runs on: a VM boots its own"),
    ("boot_id", "boot id = host's?", "yes: the host's kernel (a container); no: a kernel of its own (a VM)"),
    ("netifs", "network interfaces", "what it can send packets through"),
    ("blockdevs", "block devices", "the disks it sees: a VM its own; a container the host's, where sysfs shows them"),
    ("uid_map", "uid map", "0:0:4294967295 = host ids; 0:100000:65536 = a user namespace"),
    ("cap_eff", "effective capabilities", "what root inside may do (host root: 1ff…; OCI default a80425fb)"),
    ("cpus", "CPUs it is told", "a VM's vCPUs; a container sees the host's"),
    ("mem_mib", "memory it is told (MiB)", "a VM's RAM; a container sees the host's (its limit is in cgroups)"),
    ("pid1", "its PID 1", "init of its own world, or the host's"),
]

extension ReportModel {
    static let managerKillIntro = "Each runtime's manager process was sent SIGKILL while its container ran `sleep`; the container was then left to exit by itself with a known status. Survived: its init was still alive after the manager was gone. Collected: that status could still be read afterwards where the runtime reports it."

    static func yesNo(_ value: Bool?) -> String { value.map { $0 ? "yes" : "no" } ?? "—" }

    /// A probe value as shown (boot_id compared with the host's).
    func probeValue(_ facts: [String: String], _ key: String) -> String {
        if key == "boot_id" { return facts["boot_id"] == results.host.bootID ? "yes (same kernel)" : "no (own kernel)" }
        return facts[key] ?? "—"
    }

    var honesty: String {
        "Host: \(results.host.cpu), \(results.host.cpus) CPUs, Linux \(results.host.kernel); virtualisation **\(results.host.virtualisation)** — \(results.host.virtualisationExplanation). cgroups: \(results.host.cgroups). \(results.trials) trials per cell after \(results.warmup) warm-up, interleaved in a new order each round."
    }

    // MARK: Markdown

    public func markdown() -> String {
        var out = "# Tandem: VMs and containers, side by side\n\n"
        out += honesty + (results.complete ? "" : " **This run was interrupted: the figures below are what was measured before.**") + "\n\n"
        out += "Started \(results.startedAt). Baseline for ratios: `\(baseline)`. Times run from the launcher's spawn to \(results.workloads == ["app"] ? "the image's program's ready line (see the notes)" : "tandem-init's ready marker") (ready) and to the launcher's exit (total).\n\n"
        out += "## Backends\n\n| backend | | sandbox | runs guest code | ran? |\n|---|---|---|---|---|\n"
        for backend in results.backends {
            out += "| `\(backend.name)` | \(backend.kind) | \(backend.kindOfSandbox) | \(backend.execution) | \(backend.available ? "yes" : "no — \(backend.reason ?? "")") |\n"
        }
        for workload in results.workloads {
            guard let rows = rows[workload], !rows.isEmpty else { continue }
            let hasFigures = rows.contains { !$0.figures.isEmpty }
            out += "\n## Workload `\(workload)`\n\n| backend | ready, median [p5–p95] | total, median [p5–p95] (95% CI) | total min–max | total ÷ \(baseline) | peak RSS | CPU (launcher) | n |\(hasFigures ? " its own figures (median) |" : "")\n|---|---|---|---|---|---|---|---|\(hasFigures ? "---|" : "")\n"
            for row in rows.sorted(by: { $0.total.median < $1.total.median }) {
                let ready = row.ready.map { "\(ms($0.median)) [\(ms($0.p5))–\(ms($0.p95))]" } ?? "—"
                let total = "\(ms(row.total.median)) [\(ms(row.total.p5))–\(ms(row.total.p95))] (\(ms(row.total.ciLow))–\(ms(row.total.ciHigh)))"
                out += "| `\(row.backend.name)` (\(row.backend.execution)) | \(ready) | \(total) | \(ms(row.total.min))–\(ms(row.total.max)) | \(Format.ratio(row.ratio)) | \(row.peakRSS.map { Format.bytes($0.median) } ?? "—") | \(row.cpu.map { ms($0.median) } ?? "—") | \(row.total.n)\(row.failures > 0 ? " (+\(row.failures) failed)" : "") |\(hasFigures ? " \(Self.describe(row.figures)) |" : "")\n"
            }
            if workload == "compute" {
                let answers = Set(rows.flatMap(\.results))
                out += computeMismatch.isEmpty ? "\nEvery backend computed the same answer: `\(answers.sorted().joined(separator: "`, `"))`.\n"
                    : "\n**Mismatch:** \(computeMismatch.joined(separator: ", ")) computed a different answer: \(answers.sorted().joined(separator: " / ")).\n"
            }
        }
        if !probes.isEmpty {
            out += "\n## Isolation: what a workload sees from inside\n\nThe probe workload in each backend; `process` is the host's own view.\n\n| fact | " + probes.map { "`\($0.backend)`" }.joined(separator: " | ") + " | meaning |\n"
            out += "|---|" + String(repeating: "---|", count: probes.count) + "---|\n"
            // A fact no backend reported (results from an older probe) is left out, not shown as dashes.
            for fact in probeFacts where probes.contains(where: { $0.facts[fact.key] != nil }) {
                out += "| \(fact.title) | " + probes.map { probeValue($0.facts, fact.key) }.joined(separator: " | ") + " | \(fact.meaning) |\n"
            }
            let reaches = probes.map { reach($0.facts) }
            for (index, fact) in HostReach.facts.enumerated() where reaches.contains(where: \.measured) {
                out += "| reaches \(fact.name) | " + reaches.map { Self.yesNo($0.values[index]) }.joined(separator: " | ") + " | \(fact.meaning) |\n"
            }
        }
        if !networkReachRows.isEmpty {
            out += "\n## What a sandbox reaches over the network\n\n\(Self.networkReachIntro)\n\n| " + Self.networkReachHeader.joined(separator: " | ") + " |\n|"
                + String(repeating: "---|", count: Self.networkReachHeader.count) + "\n"
            for row in networkReachRows { out += "| `\(row[0])` | " + row.dropFirst().joined(separator: " | ") + " |\n" }
        }
        for servers in ServerTable.all(results) {
            out += "\n## \(servers.title)\n\n\(servers.intro)\n\n| " + servers.header.joined(separator: " | ") + " |\n|"
                + String(repeating: "---|", count: servers.header.count) + "\n"
            for row in servers.rows { out += "| `\(row[0])` | " + row.dropFirst().joined(separator: " | ") + " |\n" }
        }
        if let snapshots = SnapshotTable(results) {
            out += "\n## \(snapshots.title)\n\n\(snapshots.intro)\n\n| " + snapshots.header.joined(separator: " | ") + " |\n|"
                + String(repeating: "---|", count: snapshots.header.count) + "\n"
            for row in snapshots.rows { out += "| " + row.joined(separator: " | ") + " |\n" }
        }
        if let density = results.density, !density.isEmpty {
            out += "\n## Density: idle sandboxes at once\n\nN idle (`sleep`) sandboxes started together; per sandbox once all are ready: the PSS of its launcher's process tree, and the drop in the host's MemAvailable ÷ N (everything, noisy at small N; libvirt's QEMU is only in this one).\n\n| backend | N | ready | PSS per sandbox | MemAvailable drop per sandbox | all ready after |\n|---|---|---|---|---|---|\n"
            for point in density {
                out += "| `\(point.backend)` | \(point.count) | \(point.ready) | \(Format.bytes(point.pssPerSandbox)) | \(Format.signedBytes(point.bytesPerSandbox)) | \(ms(point.allReadyMs)) |\n"
            }
        }
        if !results.footprint.isEmpty {
            out += "\n## Disk footprint\n\n| artifact | size | used by | note |\n|---|---|---|---|\n"
            for artifact in results.footprint {
                out += "| \(artifact.name) | \(Format.bytes(Double(artifact.bytes))) | \(artifact.usedBy.joined(separator: ", ")) | \(artifact.note) |\n"
            }
        }
        if let kills = results.managerKill, !kills.isEmpty {
            out += "\n## When the manager dies\n\n\(Self.managerKillIntro)\n\n| runtime | killed | container survived | exit status collected | reported afterwards | note |\n|---|---|---|---|---|---|\n"
            for kill in kills {
                out += "| `\(kill.runtime)` | \(kill.manager) | \(Self.yesNo(kill.containerSurvived)) | \(Self.yesNo(kill.exitStatusCollected)) | \(kill.reported) | \(kill.note) |\n"
            }
        }
        let claims = self.claims
        out += "\n## The seeds' claims, answered\n\nEach verdict is computed from the figures above by the rule below the table; a claim whose inputs did not run is not measured here.\n\n| claim | measured here | verdict | why |\n|---|---|---|---|\n"
        for claim in claims {
            out += "| \(claim.claim) (\(claim.source)) | \(claim.measurement) | **\(claim.verdict.rawValue)** | \(claim.why) |\n"
        }
        out += "\nHow each verdict is decided:\n\n" + claims.map { "- **\($0.claim)**: \($0.rule)\n" }.joined()
        if !results.notes.isEmpty || !failedCells.isEmpty {
            out += "\n## Notes\n\n" + (failedCells + results.notes).map { "- \($0)\n" }.joined()
        }
        return out
    }

    // MARK: CSV

    /// One row per trial: everything raw, for a spreadsheet.
    public func csv() -> String {
        var out = "backend,workload,trial,status,ready_ms,total_ms,peak_rss_bytes,launcher_cpu_ms,execution,virtualisation_host,result\n"
        let execution = Dictionary(results.backends.map { ($0.name, $0.execution) }, uniquingKeysWith: { a, _ in a })
        for sample in results.samples {
            let fields = [sample.backend, sample.workload, String(sample.trial), String(sample.status),
                          sample.readyMs.map { Format.fixed($0, 3) } ?? "", Format.fixed(sample.totalMs, 3),
                          sample.peakRSSBytes.map(String.init) ?? "", sample.launcherCPUMs.map { Format.fixed($0, 3) } ?? "",
                          execution[sample.backend] ?? "", results.host.virtualisation,
                          sample.result ?? ""]
            out += fields.map(Self.csvField).joined(separator: ",") + "\n"
        }
        return out
    }

    static func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") || text.contains("\n") ? "\"" + text.replacingQuotes() + "\"" : text
    }
}

extension String {
    func replacingQuotes() -> String { split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") }

    /// HTML text escaping (the same as XML's).
    func htmlEscaped() -> String { Markup.escape(self) }
}
