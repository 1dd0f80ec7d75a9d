import Foundation
import Testing

/// The libvirt backend against the real daemon (qemu:///system; TCG on this host).
enum LibvirtLab {
    static let daemon = FileManager.default.fileExists(atPath: "/run/libvirt/libvirt-sock")
    static let ready = daemon && Lab.kernel != nil && Lab.imageBuilt && FileManager.default.isExecutableFile(atPath: "/usr/bin/virsh")

    static func tandemDomains() -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/virsh")
        process.arguments = ["-c", "qemu:///system", "list", "--all", "--name"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try? process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("tandem-") }
    }

    static func consoleDirectories() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/tmp")) ?? []).filter { $0.hasPrefix("tandem-libvirt.") }
    }
}

/// Nested in ContainerNetworkTests, serialized with its tests: a guest on Tandem's bridge holds the
/// bridge those tests see go, and the domains these tests see go.
extension ContainerNetworkTests {
    @Suite("libvirt guests on the real daemon", .serialized,
           .enabled(if: LibvirtLab.ready, "needs a running libvirt daemon (scripts/libvirtd.sh up), the cloud kernel and make image"))
    struct LibvirtGuestTests {
        @Test("direct kernel boot: hello reaches the ready marker and exits 0; accelerator said and stamped")
        func hello() throws {
            let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--workload", "hello", "--cmdline", "quiet", "--json", "--timeout", "120"])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            #expect(result.stderr.contains("TANDEM-READY") && result.stderr.contains("hello from tandem-init"))
            #expect(result.stderr.contains("accelerator tcg") || result.stderr.contains("accelerator kvm"))
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            #expect(report["backend"] as? String == "libvirt")
            #expect(report["exit_status"] as? Int == 0)
            let outcome = try #require(report["outcome"] as? [String: Any], "docs/exit-status.md promises outcome.kind")
            #expect(outcome["kind"] as? String == "exited" && outcome["status"] as? Int == 0)
            #expect(["tcg", "kvm"].contains(report["accelerator"] as? String ?? ""))
            let phases = try #require(report["phases_ms"] as? [String: Any])
            #expect((phases["ready"] as? Double ?? 0) > 0)
            #expect((report["qemu_peak_rss_bytes"] as? Int ?? 0) > 0)
            #expect(LibvirtLab.tandemDomains().isEmpty)
        }

        @Test("a run SIGKILLed mid-boot leaves its domain and directory; the next run removes both; a kept directory (no owner) stays")
        func killedRunSwept() throws {
            let kept = "/tmp/tandem-libvirt.kept-by-test"
            try FileManager.default.createDirectory(atPath: kept, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: kept) }
            let before = Set(LibvirtLab.consoleDirectories())
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Tandem.path)
            process.arguments = ["vm", "run", "--backend", "libvirt", "--workload", "sleep", "--cmdline", "quiet tandem.args=600", "--timeout", "300"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var left: [String] = []
            let deadline = Date().addingTimeInterval(30)
            while (left.isEmpty || LibvirtLab.tandemDomains().isEmpty) && Date() < deadline {
                Thread.sleep(forTimeInterval: 0.1)
                left = LibvirtLab.consoleDirectories().filter { !before.contains($0) }
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try #require(left.count == 1 && !LibvirtLab.tandemDomains().isEmpty, "the killed run had no directory or domain yet: \(left)")
            #expect(FileManager.default.fileExists(atPath: "/tmp/" + left[0]), "the killed run's directory is there to sweep")
            let next = try Tandem.run(["vm", "run", "--backend", "libvirt", "--workload", "hello", "--cmdline", "quiet", "--timeout", "120"])
            #expect(next.status == 0, "\(next.stderr.suffix(1500))")
            #expect(!FileManager.default.fileExists(atPath: "/tmp/" + left[0]), "the next run did not sweep the killed run's directory")
            #expect(LibvirtLab.tandemDomains().isEmpty, "the killed run's domain is left")
            #expect(FileManager.default.fileExists(atPath: kept), "a directory without an owner (kept with --keep) was swept")
        }

        /// A bridged guest's launcher (`backend` libvirt or qemu), and the first console line that
        /// starts with `prefix` (60 s).
        static func startBridged(_ arguments: [String], backend: String = "libvirt", waitingFor prefix: String) throws -> (Process, String?) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Tandem.path)
            process.arguments = ["vm", "run", "--backend", backend, "--net", "bridge", "--timeout", "300"] + arguments
            let out = Pipe()
            process.standardOutput = out
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bridged-\(getpid()).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            process.standardError = try FileHandle(forWritingTo: log)
            defer { try? FileManager.default.removeItem(at: log) }
            try process.run()
            let reader = out.fileHandleForReading
            let found = Background { () -> String? in
                var text = ""
                while true {
                    let data = reader.availableData
                    if data.isEmpty { return nil }
                    text += String(decoding: data, as: UTF8.self)
                    // The serial console ends lines with "\r\n", one Character in Swift: split on isNewline,
                    // complete lines only (a line may arrive in pieces).
                    guard let end = text.lastIndex(where: \.isNewline) else { continue }
                    if let line = text[..<end].split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix(prefix) }) { return String(line) }
                }
            }
            let line = found.wait()
            if line == nil { Issue.record("\(process.arguments ?? []): no line starting \(prefix); it said: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")") }
            return (process, line)
        }

        @Test("--net bridge: virtio-net on tandembr0 with a leased address; the guest's http server answers the host there; SIGTERM ends the run and takes the domain, the lease and the bridge")
        func bridged() throws {
            let (process, line) = try Self.startBridged(["--workload", "http", "--cmdline", "quiet tandem.args=8080"], waitingFor: "http: accepting on port 8080")
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
            let address = try #require(line?.split(separator: " ").map(String.init).first { $0.hasPrefix(ContainerNetworkTests.subnetPrefix) },
                                       "the guest announced no bridge address: \(line ?? "nothing")")
            #expect(ContainerNetworkTests.fetch(address, port: 8080, within: 30) != nil, "the guest's server did not answer at \(address):8080")
            let ports = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(ContainerNetworkTests.bridge)/brif")) ?? []
            #expect(ports.contains { $0.hasPrefix("vnet") }, "no libvirt tap on the bridge: \(ports)")
            #expect(FileManager.default.fileExists(atPath: ContainerNetworkTests.leases + "/" + address), "no lease for \(address)")
            kill(process.processIdentifier, SIGTERM)
            process.waitUntilExit()
            #expect(process.terminationStatus == 128 + SIGTERM)
            #expect(LibvirtLab.tandemDomains().isEmpty, "the domain is left")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("--net bridge, the run SIGKILLed: the next libvirt run (without a network) ends the stale lease and removes the bridge and the domain")
        func bridgedKilled() throws {
            let (process, line) = try Self.startBridged(["--workload", "sleep", "--cmdline", "tandem.args=600"], waitingFor: "TANDEM-READY")
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            try #require(line != nil, "the guest never got ready")
            #expect(!ContainerNetworkTests.interfaces(ContainerNetworkTests.bridge).isEmpty, "the killed run's bridge is there to sweep")
            let next = try Tandem.run(["vm", "run", "--backend", "libvirt", "--workload", "hello", "--cmdline", "quiet", "--timeout", "120"])
            #expect(next.status == 0, "\(next.stderr.suffix(1500))")
            #expect(LibvirtLab.tandemDomains().isEmpty, "the killed run's domain is left")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("the workload's exit status 3 comes back as 3")
        func exitStatus() throws {
            let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--workload", "sh", "--cmdline", "quiet tandem.args=-c,exit${IFS}3", "--timeout", "120"])
            #expect(result.status == 3, "\(result.stderr.suffix(2000))")
            #expect(result.stdout.contains("TANDEM-RESULT workload=sh status=3"))
        }

        @Test("--disk: the guest boots from its ext4 root (virtio-blk) and the workload sees the disk's file; nothing left")
        func disk() throws {
            let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--disk", "--workload", "cat", "--cmdline", "quiet tandem.args=/etc/tandem-disk",
                                         "--timeout", "180"])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            #expect(result.stdout.contains("root=disk"))
            #expect(result.stderr.contains("machine pc"))
            #expect(LibvirtLab.tandemDomains().isEmpty)
            #expect(LibvirtLab.consoleDirectories().isEmpty, "the disk image and console file are removed")
        }

        @Test("--timeout destroys the domain: status 124, nothing left")
        func timeout() throws {
            let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--workload", "sleep", "--cmdline", "quiet tandem.args=600", "--timeout", "6"])
            #expect(result.status == 124, "\(result.stderr.suffix(2000))")
            #expect(result.stderr.contains("ran past --timeout 6.0 s"))
            #expect(LibvirtLab.tandemDomains().isEmpty)
            #expect(LibvirtLab.consoleDirectories().isEmpty)
        }

        @Test("bad input: unknown machine, accelerator, unreadable kernel — one line, 125, nothing left")
        func errors() throws {
            for (arguments, message) in [(["--machine", "virt"], "--machine virt: must be microvm, q35, pc"),
                                         (["--accel", "hvf"], "--accel hvf: must be auto, kvm or tcg"),
                                         (["--kernel", "/no/vmlinuz"], "--kernel /no/vmlinuz: does not exist"),
                                         (["--tiny", "hello"], "--tiny guests run only on Tandem's own VMM (--backend microvm)")] {
                let result = try Tandem.run(["vm", "run", "--backend", "libvirt"] + arguments)
                #expect(result.status == 125)
                #expect(result.stderr == "tandem: error: \(message)\n")
            }
            #expect(LibvirtLab.tandemDomains().isEmpty)
        }
    }
}
