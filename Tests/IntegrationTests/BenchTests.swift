import Foundation
import Testing

@Suite("tandem bench and tandem report, end to end", .enabled(if: Containers.available && Tandem.guestsBuilt, "needs root, make guests and make image"))
struct BenchEndToEndTests {
    @Test("a quick bench over the backends that run here writes a complete results.json and every report page")
    func quickBench() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-test-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        // Without the network half: it holds the bridge, which the bridge tests (run meanwhile)
        // see go; NetworkReachTests, serialized with them, measures it.
        let result = try Tandem.run(["bench", "--quick", "--trials", "2", "--backends", "container,process,crun,tiny-microvm",
                                     "--workloads", "hello,probe", "--no-network-reach", "--snapshot", "--out", out])
        #expect(result.status == 0, "\(result.stderr.suffix(2000))")
        #expect(result.stdout.contains("report: \(out)/index.html"))
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))
        let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(results["schema"] as? String == "tandem.bench/1")
        #expect(results["complete"] as? Bool == true)
        let samples = try #require(results["samples"] as? [[String: Any]])
        for backend in ["container", "process", "crun"] {
            #expect(samples.filter { $0["backend"] as? String == backend }.count == 4, "\(backend): 2 workloads × 2 trials")
        }
        #expect(samples.filter { $0["backend"] as? String == "tiny-microvm" }.count == 2, "tiny: hello only")
        let backends = try #require(results["backends"] as? [[String: Any]])
        #expect(backends.map { $0["name"] as? String ?? "" } == ["container", "process", "crun", "tiny-microvm"])
        for backend in backends where backend["available"] as? Bool == false {
            #expect(!(backend["reason"] as? String ?? "").isEmpty, "an unavailable backend is listed with its reason")
        }
        for page in ["index.html", "report.md", "results.csv", "summary.json"] {
            #expect(FileManager.default.fileExists(atPath: "\(out)/\(page)"), "\(page)")
        }
        let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        #expect(markdown.contains("## The seeds' claims, answered"))
        // --snapshot: two trials of the tiny microVM, each snapshotted and restored.
        let snapshots = try #require(results["snapshots"] as? [[String: Any]])
        #expect(snapshots.count == 2)
        for snapshot in snapshots {
            #expect(snapshot["problem"] == nil, "\(snapshot)")
            #expect(snapshot["memoryBytes"] as? Int == 128 << 20)
            #expect((snapshot["restoreRunningMs"] as? Double ?? 0) > 0 && (snapshot["restoreReadyMs"] as? Double ?? 0) > 0)
            #expect((snapshot["memoryAllocatedBytes"] as? Int ?? 0) > 0)
        }
        #expect(markdown.contains("## Snapshots: cold boot against restore"))
        #expect(markdown.contains("## Isolation: what a workload sees from inside"))

        // What the probe reached: the bare process (on the host) read the canary file, no container did.
        let host = try #require(results["host"] as? [String: Any])
        let canary = try #require(host["canary"] as? String)
        #expect(canary.count == 16)
        func probe(_ backend: String) -> [String: String]? {
            samples.first { $0["backend"] as? String == backend && $0["probe"] != nil }?["probe"] as? [String: String]
        }
        #expect(probe("process")?["host_file"] == canary, "the control reaches the host's file")
        #expect(probe("process")?["host_procs"] == "yes")
        #expect(probe("process")?["keyring"] == canary, "the control finds the bench's own key in root's keyring")
        for backend in ["container", "crun"] {
            #expect(probe(backend)?["host_file"] != canary, "\(backend) cannot read a host file outside its root")
            #expect(probe(backend)?["host_procs"] == "no", "\(backend) sees no host process")
        }
        // An invalidated key stays listed (flag "i") until the kernel's key collector runs, so a
        // removed canary is one that is gone or marked invalidated, revoked or dead. Only this
        // bench's key: other tests run benches at the same time, each with its own.
        let key = try #require(host["canaryKey"] as? String)
        #expect(key.hasPrefix("tandem-host-canary-"))
        let liveCanaries = try String(contentsOfFile: "/proc/keys", encoding: .utf8).split(separator: "\n").filter { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return line.hasSuffix(" \(key): 16") && fields.count > 1 && !fields[1].contains(where: { "iRD".contains($0) })
        }
        #expect(liveCanaries.isEmpty, "the canary key is removed: \(liveCanaries)")

        // Each runtime's manager killed: measured, and nothing left of it.
        let kills = try #require(results["managerKill"] as? [[String: Any]])
        let runtimes = kills.map { $0["runtime"] as? String ?? "" }
        #expect(runtimes.starts(with: ["tandem ctr", "tandem-runtime", "crun"]))
        for kill in kills {
            #expect(kill["measured"] as? Bool == true, "\(kill)")
            #expect(kill["containerSurvived"] is Bool && kill["exitStatusCollected"] is Bool, "\(kill)")
        }
        #expect(markdown.contains("## When the manager dies"))
        let left = try Tandem.run(["ctr", "ps"])
        #expect(!left.stdout.contains("tandem-mk-"), "no container of the measurement is left")
        let cgroups = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/memory")) ?? []
        #expect(!cgroups.contains { $0.hasPrefix("tandem-mk-") }, "no cgroup of the measurement is left")
        // podman, its conmon killed, never has runc delete its container: no such state is left.
        let orphans = ((try? FileManager.default.contentsOfDirectory(atPath: "/run/runc")) ?? []).filter { id in
            guard let data = FileManager.default.contents(atPath: "/run/runc/\(id)/state.json"),
                  let state = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let labels = (state["config"] as? [String: Any])?["labels"] as? [String] else { return false }
            guard labels.contains("io.container.manager=libpod"), let bundle = labels.first(where: { $0.hasPrefix("bundle=") }) else { return false }
            return !FileManager.default.fileExists(atPath: String(bundle.dropFirst("bundle=".count)))
        }
        #expect(orphans.isEmpty, "runc states of removed podman containers are left: \(orphans)")
    }

    @Test("Ctrl-C keeps what was measured: results.json (complete: false) and the report, status 130, nothing left")
    func interrupted() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-int-\(UUID().uuidString.prefix(8))").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try Tandem.run(["bench", "--trials", "500", "--warmup", "0", "--backends", "container,process", "--workloads", "hello",
                                     "--out", out], interruptAfter: 2)
        #expect(result.status == 130, "\(result.stderr.suffix(1000))")
        let data = try Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))
        let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(results["complete"] as? Bool == false)
        #expect(((results["samples"] as? [Any]) ?? []).count > 0)
        #expect(FileManager.default.fileExists(atPath: out + "/index.html"))
        let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        #expect(markdown.contains("This run was interrupted"))
    }

    @Test("bad input: unknown backend or workload, a file that is not results")
    func errors() throws {
        let backend = try Tandem.run(["bench", "--backends", "docker"])
        #expect(backend.status == 125 && backend.stderr.hasPrefix("tandem: error: --backends: unknown backend docker"))
        let workload = try Tandem.run(["bench", "--workloads", "mine"])
        #expect(workload.status == 125 && workload.stderr.hasPrefix("tandem: error: --workloads: unknown workload mine"))
        let baseline = try Tandem.run(["bench", "--backends", "process", "--baseline", "container"])
        #expect(baseline.status == 125 && baseline.stderr.hasPrefix("tandem: error: --baseline container: not among the backends run"))
        let report = try Tandem.run(["report", "/etc/hostname"])
        #expect(report.status == 125 && report.stderr.hasPrefix("tandem: error: /etc/hostname: not a Tandem results file"))
    }
}
