import Foundation
import Testing

/// Nested in ContainerNetworkTests, serialized with its tests: the measurement holds the bridge
/// those tests see go.
extension ContainerNetworkTests {
    @Suite("tandem bench: what each sandbox reaches of the host's network", .serialized)
    struct NetworkReachTests {
        /// The bridge holder's name (ServerSetup.holderPrefix and the bench's pid).
        enum ServerHolder {
            static func name(_ pid: Int32) -> String { "tandem-bridge-hold-\(pid)" }
        }

        /// The abstract Unix sockets of the host's network namespace whose names start with `prefix`.
        static func abstractSockets(_ prefix: String) -> [String] {
            ((try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8)) ?? "").split(separator: "\n")
                .compactMap { $0.split(separator: " ").last.map(String.init) }.filter { $0.hasPrefix("@" + prefix) }
        }

        @Test("the probe in the bare process, tandem ctr with its own loopback, on the bridge and with the host's network (and QEMU on the bridge where it runs): each reads the host's nonce exactly where its network leads; the claim counts the host-only services; nothing left")
        func reach() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-net-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let qemu = QEMULab.ready
            let before = Set(QEMULab.qemuProcesses())
            let result = try Tandem.run(["bench", "--backends", "process,container" + (qemu ? ",qemu-microvm" : ""), "--workloads", "probe",
                                         "--trials", "1", "--warmup", "0", "--no-manager-kill", "--out", out])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))
            let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let canary = try #require((results["host"] as? [String: Any])?["canary"] as? String)
            let runs = try #require(results["networkReach"] as? [[String: Any]], "\(result.stderr.suffix(2000))")
            /// What each sandbox read from the loopback, abstract and bridge services: true when the nonce.
            func reached(_ sandbox: String) -> [Bool]? {
                guard let run = runs.first(where: { $0["sandbox"] as? String == sandbox }), let facts = run["facts"] as? [String: String] else { return nil }
                return ["net_loopback", "net_abstract", "net_bridge"].map { facts[$0] == canary }
            }
            #expect(reached("process") == [true, true, true], "the control, on the host, reaches all three: \(runs)")
            #expect(reached("tandem ctr --net loopback") == [false, false, false], "its own loopback, no route to the bridge")
            #expect(reached("tandem ctr --net bridge") == [false, false, true], "the bridge address only")
            #expect(reached("tandem ctr --net host") == [true, true, true], "the host's network namespace: its loopback and abstract sockets")
            let loopbackRun = runs.first { $0["sandbox"] as? String == "tandem ctr --net loopback" }
            #expect((loopbackRun?["facts"] as? [String: String])?["net_bridge"] == "unrouted", "no route: not tried")
            if qemu {
                #expect(reached("tandem vm run --backend qemu --net bridge") == [false, false, true], "a VM on the bridge: the bridge address only")
            }

            let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
            #expect(markdown.contains("## What a sandbox reaches over the network"))
            #expect(markdown.contains("| `tandem ctr --net host` | the host's (--net host) | native (host kernel) | yes | yes | yes |"))
            let summary = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/summary.json"))) as? [String: Any])
            let claim = try #require((summary["claims"] as? [[String: Any]])?.first { $0["id"] as? String == "host-reach" })
            let why = claim["why"] as? String ?? ""
            #expect(why.contains("over the network, tandem ctr --net host reached the host's loopback service or abstract socket"), "\(why)")

            // Nothing left: the services' socket, the bridge and its holder, QEMU.
            #expect(Self.abstractSockets("tandem-host-canary").isEmpty, "the abstract socket outlived the bench")
            ContainerNetworkTests.expectNothingLeft()
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left")
            let left = try Tandem.run(["ctr", "ps"])
            #expect(!left.stdout.contains("/bin/sleep"), "the bridge's holder is left: \(left.stdout)")
        }

        @Test("the bench SIGKILLed while it holds the bridge (QEMU's probe running): the next bench removes the holder it left, the VM's stale lease (and with them the bridge) and its canary key",
              .enabled(if: QEMULab.ready, "needs qemu-system-x86_64, the cloud kernel and make image (its probe run is the window)"))
        func killed() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-kill-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let before = Set(QEMULab.qemuProcesses())
            let bench = Process()
            bench.executableURL = URL(fileURLWithPath: Tandem.path)
            bench.arguments = ["bench", "--backends", "process,container,qemu-microvm", "--workloads", "probe", "--trials", "1", "--warmup", "0",
                               "--no-manager-kill", "--out", out]
            let errors = Pipe()
            bench.standardError = errors
            bench.standardOutput = FileHandle.nullDevice
            try bench.run()
            defer { if bench.isRunning { kill(bench.processIdentifier, SIGKILL) } }
            let reader = errors.fileHandleForReading
            let window = Background { () -> Bool in
                var text = ""
                while true {
                    let data = reader.availableData
                    if data.isEmpty { return false }
                    text += String(decoding: data, as: UTF8.self)
                    if text.contains("network reach: tandem vm run --backend qemu --net bridge …") { return true }
                }
            }
            try #require(window.wait(), "the bench never reached QEMU's network probe")
            let holder = ServerHolder.name(bench.processIdentifier)
            #expect(try Tandem.run(["ctr", "ps"]).stdout.contains(holder), "no bridge holder while the bench runs")
            kill(bench.processIdentifier, SIGKILL)
            bench.waitUntilExit()
            // The probe's QEMU (lab-time's grandchild) finishes on its own or goes with its tandem.
            for _ in 0..<300 where !Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty { Thread.sleep(forTimeInterval: 0.1) }
            #expect(try Tandem.run(["ctr", "ps"]).stdout.contains(holder), "the holder outlives a SIGKILLed bench (what the sweep is for)")
            #expect(!ContainerNetworkTests.interfaces(ContainerNetworkTests.bridge).isEmpty, "the holder keeps the bridge")

            let next = try Tandem.run(["bench", "--backends", "process", "--workloads", "hello", "--trials", "1", "--warmup", "0",
                                       "--no-manager-kill", "--out", out + "-next"])
            defer { try? FileManager.default.removeItem(atPath: out + "-next") }
            #expect(next.status == 0, "\(next.stderr.suffix(1500))")
            #expect(try !Tandem.run(["ctr", "ps"]).stdout.contains(holder), "the next bench did not remove the holder")
            // The killed bench's canary key (it would stay for its hour): invalidated or gone.
            let key = "tandem-host-canary-\(bench.processIdentifier): "
            let live = try String(contentsOfFile: "/proc/keys", encoding: .utf8).split(separator: "\n").filter { line in
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                return line.contains(key) && fields.count > 1 && !fields[1].contains(where: { "iRD".contains($0) })
            }
            #expect(live.isEmpty, "the killed bench's key is left: \(live)")
            ContainerNetworkTests.expectNothingLeft()
            #expect(Self.abstractSockets("tandem-host-canary").isEmpty, "the abstract socket outlived the bench")
        }
    }
}
