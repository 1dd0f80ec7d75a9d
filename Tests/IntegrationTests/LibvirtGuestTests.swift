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
