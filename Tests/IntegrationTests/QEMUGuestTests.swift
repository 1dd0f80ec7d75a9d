import Foundation
import Testing

/// QEMU's microvm machine run directly (`tandem vm run --backend qemu`; TCG on this host).
enum QEMULab {
    static let ready = Lab.qemu && Lab.kernel != nil && Lab.imageBuilt

    /// The QEMU processes running now (pids), whatever started them.
    static func qemuProcesses() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { name in
            name.allSatisfy(\.isNumber) && (try? String(contentsOfFile: "/proc/\(name)/comm", encoding: .utf8))?.hasPrefix("qemu-system") == true
        }
    }
}

/// Nested in ContainerNetworkTests, serialized with its tests: a bridged guest holds the bridge
/// those tests see go.
extension ContainerNetworkTests {
    @Suite("QEMU microvm run directly (tandem vm run --backend qemu)", .serialized,
           .enabled(if: QEMULab.ready, "needs qemu-system-x86_64, the cloud kernel and make image"))
    struct QEMUGuestTests {
        @Test("hello reaches the ready marker and exits 0; the accelerator is said; no QEMU left")
        func hello() throws {
            let before = Set(QEMULab.qemuProcesses())
            let result = try Tandem.run(["vm", "run", "--backend", "qemu", "--workload", "hello", "--timeout", "120"])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            #expect(result.stdout.contains("TANDEM-READY") && result.stdout.contains("hello from tandem-init"), "\(result.stdout.suffix(1500))")
            #expect(result.stderr.contains("accelerator tcg") || result.stderr.contains("accelerator kvm"), "\(result.stderr)")
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left")
        }

        @Test("--json: the report (tandem.vm-run/1) on stdout, the console on stderr: backend qemu, the accelerator, exit status and outcome, the ready phase, QEMU's peak RSS and CPU time")
        func json() throws {
            let result = try Tandem.run(["vm", "run", "--backend", "qemu", "--workload", "hello", "--json", "--timeout", "120"])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            #expect(result.stderr.contains("hello from tandem-init"), "the console goes to stderr with --json")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            #expect(report["schema"] as? String == "tandem.vm-run/1" && report["backend"] as? String == "qemu")
            #expect(report["exit_status"] as? Int == 0)
            let outcome = try #require(report["outcome"] as? [String: Any])
            #expect(outcome["kind"] as? String == "exited" && outcome["status"] as? Int == 0)
            #expect(["tcg", "kvm"].contains(report["accelerator"] as? String ?? ""))
            let phases = try #require(report["phases_ms"] as? [String: Any])
            let ready = phases["ready"] as? Double ?? 0, exit = phases["exit"] as? Double ?? 0
            #expect(ready > 0 && exit >= ready, "\(phases)")
            #expect((report["qemu_peak_rss_bytes"] as? Int ?? 0) > 10_000_000, "\(report)")
            #expect((report["qemu_cpu_ns"] as? Int ?? 0) > 0, "\(report)")
        }

        @Test("the workload's exit status 3 comes back as 3")
        func exitStatus() throws {
            let result = try Tandem.run(["vm", "run", "--backend", "qemu", "--workload", "sh", "--cmdline", "tandem.args=-c,exit${IFS}3", "--timeout", "120"])
            #expect(result.status == 3, "\(result.stderr.suffix(2000))")
            #expect(result.stdout.contains("TANDEM-RESULT workload=sh status=3"))
        }

        @Test("--timeout ends QEMU: status 124, no QEMU left")
        func timeout() throws {
            let before = Set(QEMULab.qemuProcesses())
            let result = try Tandem.run(["vm", "run", "--backend", "qemu", "--workload", "sleep", "--cmdline", "tandem.args=600", "--timeout", "5"])
            #expect(result.status == 124, "\(result.stderr.suffix(2000))")
            #expect(result.stderr.contains("ran past --timeout 5.0 s"), "\(result.stderr)")
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left")
        }

        @Test("--net bridge: virtio-net on a tap on tandembr0 with a leased address; the guest's http server answers the host there; SIGTERM ends the run (143) and takes QEMU, the tap, the lease and the bridge")
        func bridged() throws {
            let before = Set(QEMULab.qemuProcesses())
            let (process, line) = try LibvirtGuestTests.startBridged(["--workload", "http", "--cmdline", "tandem.args=8080"], backend: "qemu",
                                                                     waitingFor: "http: accepting on port 8080")
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let address = try #require(line?.split(separator: " ").map(String.init).first { $0.hasPrefix(ContainerNetworkTests.subnetPrefix) },
                                       "the guest announced no bridge address: \(line ?? "nothing")")
            #expect(ContainerNetworkTests.fetch(address, port: 8080, within: 30) != nil, "the guest's server did not answer at \(address):8080")
            let ports = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(ContainerNetworkTests.bridge)/brif")) ?? []
            #expect(ports.contains { $0.hasPrefix("tvvm") }, "no tap of ours on the bridge: \(ports)")
            #expect(FileManager.default.fileExists(atPath: ContainerNetworkTests.leases + "/" + address), "no lease for \(address)")
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationStatus == 128 + SIGTERM)
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("--net bridge, tandem SIGKILLed: QEMU dies with it and its tap goes; the next --net bridge run ends the stale lease, and the bridge goes at its end")
        func bridgedKilled() throws {
            let before = Set(QEMULab.qemuProcesses())
            let (process, line) = try LibvirtGuestTests.startBridged(["--workload", "sleep", "--cmdline", "tandem.args=600"], backend: "qemu",
                                                                     waitingFor: "TANDEM-READY")
            try #require(line != nil, "the guest never got ready")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            var left = Set(QEMULab.qemuProcesses()).subtracting(before)
            for _ in 0..<100 where !left.isEmpty {
                Thread.sleep(forTimeInterval: 0.05)
                left = Set(QEMULab.qemuProcesses()).subtracting(before)
            }
            #expect(left.isEmpty, "QEMU outlived its SIGKILLed tandem: \(left)")
            #expect(ContainerNetworkTests.interfaces("tvvm").isEmpty, "the tap outlived its QEMU")
            let next = try Tandem.run(["vm", "run", "--backend", "qemu", "--net", "bridge", "--workload", "hello", "--timeout", "120"])
            #expect(next.status == 0, "\(next.stderr.suffix(1500))")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("redis in a VM: an image built --with-redis boots in QEMU on the bridge, its /bin/redis workload answers PING at the guest's address; SIGTERM: 143, nothing left",
              .enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/redis-check-rdb"), "needs redis-tools (make deps)"))
        func redis() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-redis-vm-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let built = try Tandem.run(["image", "build", "--with-redis", "--out", out])
            try #require(built.status == 0, "\(built.stderr)")
            let before = Set(QEMULab.qemuProcesses())
            let (process, line) = try LibvirtGuestTests.startBridged(["--initrd", out + "/initramfs.cpio", "--workload", "redis", "--cmdline", "tandem.args=6379"],
                                                                     backend: "qemu", waitingFor: "redis: accepting on port 6379")
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let address = try #require(line?.split(separator: " ").map(String.init).first { $0.hasPrefix(ContainerNetworkTests.subnetPrefix) },
                                       "the guest announced no bridge address: \(line ?? "nothing")")
            let answer = ContainerNetworkTests.redisPing(address, port: 6379, within: 30)
            #expect(answer.hasPrefix("+PONG"), "redis in the VM did not answer at \(address):6379: \(answer)")
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationStatus == 128 + SIGTERM)
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("the server benchmark's qemu-bridge column: the guest's http answers, is loaded by wrk without errors, stops with SIGTERM (143); its row is marked emulated where there is no hardware virtualisation; no QEMU, lease or bridge left",
              .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk"), "needs wrk (make deps)"))
        func server() throws {
            let before = Set(QEMULab.qemuProcesses())
            try ContainerNetworkTests.ServerBench.vmServerColumn(backend: "qemu-microvm", column: "qemu-bridge")
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("--net bridge, SIGTERM at points during the start (before the tap, around QEMU's spawn, while the guest boots): 143 each time, no QEMU, tap, lease or bridge left")
        func signalDuringStart() throws {
            let before = Set(QEMULab.qemuProcesses())
            for delay in [0.02, 0.1, 0.3, 0.8] {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: Tandem.path)
                process.arguments = ["vm", "run", "--backend", "qemu", "--net", "bridge", "--workload", "sleep", "--cmdline", "tandem.args=60", "--timeout", "60"]
                process.standardOutput = FileHandle.nullDevice
                process.standardError = FileHandle.nullDevice
                try process.run()
                Thread.sleep(forTimeInterval: delay)
                kill(process.processIdentifier, SIGTERM)
                process.waitUntilExit()
                // Killed by the signal before tandem blocks it (terminationReason .uncaughtSignal) or stopped by it: 143 to a shell either way.
                #expect(process.terminationStatus == SIGTERM || process.terminationStatus == 128 + SIGTERM, "after \(delay) s: \(process.terminationStatus)")
                #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty, "a QEMU is left after SIGTERM at \(delay) s")
                ContainerNetworkTests.expectNothingLeft()
            }
        }

        @Test("refused by name, nothing started: --tiny, Tandem's VMM's and libvirt's options, --net tap, a bad accelerator, a missing kernel")
        func refusals() throws {
            let before = Set(QEMULab.qemuProcesses())
            for (arguments, message) in [(["--tiny", "hello"], "--tiny guests run only on Tandem's own VMM (--backend microvm)"),
                                         (["--drive", "/tmp/x"], "--backend qemu boots the kernel and initramfs in QEMU's microvm machine: --drive, --root-disk, --vsock, --api-sock are Tandem's VMM's; --disk, --machine, --keep libvirt's"),
                                         (["--api-sock", "/tmp/x.sock"], "--backend qemu boots the kernel and initramfs in QEMU's microvm machine: --drive, --root-disk, --vsock, --api-sock are Tandem's VMM's; --disk, --machine, --keep libvirt's"),
                                         (["--disk"], "--backend qemu boots the kernel and initramfs in QEMU's microvm machine: --drive, --root-disk, --vsock, --api-sock are Tandem's VMM's; --disk, --machine, --keep libvirt's"),
                                         (["--net", "tap"], "--net tap: a QEMU guest takes one --net bridge (virtio-net on Tandem's bridge); tap is Tandem's VMM's (--backend microvm)"),
                                         (["--accel", "hvf"], "--accel hvf: must be auto, kvm or tcg"),
                                         (["--kernel", "/no/vmlinuz"], "--kernel /no/vmlinuz: does not exist")] {
                let result = try Tandem.run(["vm", "run", "--backend", "qemu"] + arguments)
                #expect(result.status == 125, "\(arguments)")
                #expect(result.stderr == "tandem: error: \(message)\n", "\(arguments)")
            }
            #expect(Set(QEMULab.qemuProcesses()).subtracting(before).isEmpty)
            #expect(ContainerNetworkTests.interfaces(ContainerNetworkTests.bridge).isEmpty)
        }
    }
}
