import Foundation
import HostFacts
import Testing

/// What Tandem refuses at once rather than run into a crash or a silent hang, naming the input and
/// the host's virtualisation mode (issue: only what is true).
@Suite("vm run refuses what cannot work here, at once and by name", .enabled(if: Tandem.guestsBuilt, "needs make guests"))
struct RefusalTests {
    static let mode = HostFacts.probeKVMMode()

    @Test("--mode that a built-in tiny guest was not built for is refused (it used to crash the guest: 126)",
          .enabled(if: Tandem.kvmUsable, "needs /dev/kvm"))
    func tinyMode() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "hello", "--mode", "real", "--timeout", "5"])
        #expect(result.status == 125)
        #expect(result.stderr.contains("--mode real: the built-in guest 'hello' is built for long mode only"))
        let own = try Tandem.run(["vm", "run", "--tiny", "hello16", "--mode", "real", "--timeout", "5"])
        #expect(own.status == 0, "hello16 is a real-mode guest: \(own.stderr)")
    }

    /// Inputs a hostile or careless user gives `vm run` (issue 16's list): each refused at once by
    /// name (under `timeout 20`: a hang fails as 124), never a crash (SIGILL was 132), a hang or a
    /// 4 GiB read.
    static let badInputs: [(arguments: [String], status: Int32, says: String)] = [
        (["--tiny", "hello", "--timeout", "2e10"], 125, "--timeout 20000000000.0: at most 31536000 seconds"),
        (["--tiny", "hello", "--timeout", "inf"], 125, "--timeout inf: must be 0 (no limit) or a positive number"),
        (["--tiny", "hello", "--timeout", "-1"], 125, "--timeout -1.0: must be 0 (no limit) or a positive number"),
        (["--tiny", "hello", "--memory", "-1"], 125, "--memory -1: guest memory must be at least 1 MiB"),
        (["--tiny", "hello", "--vcpus", "-3"], 125, "--vcpus -3: a tiny guest runs on one vCPU"),
        (["--tiny", "hello", "--vcpus", "2"], 125, "--vcpus 2: a tiny guest runs on one vCPU"),
        (["--tiny", "hello", "--arg", "-1"], 64, "The value '-1' is invalid for '--arg <n>'"),
        (["--tiny", "FIFO"], 125, "guest image FIFO is not a regular file"),
        (["--tiny", "/dev/zero"], 125, "guest image /dev/zero is not a regular file"),
        (["--kernel", "FIFO", "--allow-emulated", "--timeout", "5"], 125, "kernel FIFO is not a regular file"),
        (["--initrd", "/dev/zero", "--allow-emulated", "--timeout", "5"], 125, "initrd /dev/zero is not a regular file"),
        (["--backend", "libvirt", "--timeout", "2e10"], 125, "--timeout 20000000000.0: at most 31536000 seconds"),
        (["--backend", "libvirt", "--kernel", "FIFO"], 125, "--kernel FIFO: is not a regular file"),
        (["--backend", "libvirt", "--drive", "/tmp"], 125, "--drive, --root-disk, --vsock and --api-sock are Tandem's VMM's (--backend microvm)"),
        (["--backend", "libvirt", "--root-disk", "/tmp"], 125, "--drive, --root-disk, --vsock and --api-sock are Tandem's VMM's (--backend microvm)"),
        (["--backend", "libvirt", "--net", "tap"], 125, "--net tap: a libvirt guest takes one --net bridge"),
        (["--backend", "libvirt", "--net", "bridge", "--connect", "qemu+ssh://elsewhere/system"], 125, "--net bridge with --connect qemu+ssh://elsewhere/system: Tandem's bridge is on this host"),
        (["--backend", "libvirt", "--vsock", "/tmp/tandem-refused.sock"], 125, "--drive, --root-disk, --vsock and --api-sock are Tandem's VMM's (--backend microvm)"),
        (["--backend", "libvirt", "--api-sock", "/tmp/tandem-refused.sock"], 125, "--drive, --root-disk, --vsock and --api-sock are Tandem's VMM's (--backend microvm)"),
        (["--tiny", "hello", "--vsock", "/tmp"], 125, "--vsock /tmp: bind(/tmp: exists and is not a socket): File exists"),
        (["--tiny", "hello", "--vsock", "/nonexistent-dir/v.sock"], 125, "--vsock /nonexistent-dir/v.sock: bind(/nonexistent-dir/v.sock): No such file or directory"),
        (["--tiny", "hello", "--net", "bogus"], 125, "--net bogus: must be tap (Tandem makes and addresses one), tap=NAME"),
        (["--tiny", "hello", "--net", "bridge", "--net", "bridge"], 125, "--net bridge: once per VM"),
        (["--tiny", "hello", "--net", "tap=bad/name"], 125, "--net tap=bad/name: interface name(bad/name: 1 to 15 letters"),
        (["--tiny", "blk", "--root-disk", "/tmp"], 125, "--root-disk boots Linux from the disk; a tiny guest takes its disks as --drive"),
        (["--root-disk", "FIFO", "--allow-emulated", "--timeout", "5"], 125, "--root-disk FIFO: FIFO is not a regular file"),
        (["--root-disk", "/tmp/x.img,ro", "--allow-emulated", "--timeout", "5"], 125, "--root-disk /tmp/x.img,ro: must be the PATH of a writable ext4 image"),
    ]

    @Test("bad options and files are refused at once, by name: no crash, no hang, no endless read",
          .enabled(if: Tandem.kvmUsable, "needs /dev/kvm"))
    func badInputs() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-refuse-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("fifo").path
        try #require(mkfifo(fifo, 0o600) == 0)
        for (arguments, status, says) in Self.badInputs {
            let argv = arguments.map { $0 == "FIFO" ? fifo : $0 }
            let result = try Tandem.run(["vm", "run"] + argv, prefix: ["/usr/bin/timeout", "20"])
            let expected = says.replacingOccurrences(of: "FIFO", with: fifo)
            #expect(result.status == status && result.stderr.contains(expected), "\(argv): status \(result.status), \(result.stderr)")
        }
    }

    @Test("a Linux guest on emulated KVM is refused at once, naming the mode and the nested lab",
          .enabled(if: mode == .emulated && Lab.kernel != nil, "needs an emulated /dev/kvm (no VT-x/AMD-V) and linux-image-cloud-amd64"))
    func linuxOnEmulatedKVM() throws {
        // Without the refusal this runs until --timeout (124) with nothing printed.
        let result = try Tandem.run(["vm", "run", "--workload", "hello", "--timeout", "20"])
        #expect(result.status == 125)
        #expect(result.stderr.contains("virtualisation is emulated"))
        #expect(result.stderr.contains("tandem lab nested"))
        #expect(result.stderr.contains("--allow-emulated"))
    }

    @Test("libvirt --accel kvm without hardware virtualisation is refused, naming the mode",
          .enabled(if: mode != .hardware && Lab.kernel != nil && FileManager.default.fileExists(atPath: "/run/libvirt/libvirt-sock"),
                   "needs a host without VT-x/AMD-V, the cloud kernel and the libvirt daemon"))
    func libvirtKVMWithoutHardware() throws {
        let result = try Tandem.run(["vm", "run", "--backend", "libvirt", "--accel", "kvm", "--workload", "hello", "--timeout", "60"])
        #expect(result.status == 125)
        #expect(result.stderr.contains("--accel kvm: this host's virtualisation is \(Self.mode.rawValue)"))
        #expect(!result.stderr.contains("kvm (hardware virtualisation)"), "never calls emulation hardware")
    }
}
