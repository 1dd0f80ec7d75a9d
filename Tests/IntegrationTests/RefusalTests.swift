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
