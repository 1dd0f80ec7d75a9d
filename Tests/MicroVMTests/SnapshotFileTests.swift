@testable import MicroVM
import Testing

/// The snapshot state file on its own: what it writes reads back, and what a hostile or damaged
/// file holds is refused with a message, never a crash (Fuzz/SnapshotFuzz.swift goes further).
@Suite("snapshot state file")
struct SnapshotFileTests {
    static let sample = SnapshotState(
        machine: .init(kind: 0, guest: "ticker.bin", memoryMiB: 16, ranges: [.init(start: 0, size: 16 << 20)]),
        host: .init(vendor: "AuthenticAMD", features: [0xfed8_3203, 0x178b_fbff, 0x219c_91a9, 0x0040_069c, 0x10], xsaveBytes: 4096),
        vcpus: [.init(id: 0, blobs: [.init(kind: 1, bytes: Array(repeating: 7, count: 144)), .init(kind: 2, bytes: Array(0..<200))],
                      xsave: Array(repeating: 1, count: 4096), msrs: [.init(index: 0x10, value: 123_456), .init(index: 0xc000_0080, value: 0x500)],
                      cpuid: [])],
        vmBlobs: [.init(kind: 8, bytes: Array(repeating: 3, count: 48))],
        devices: [.init(name: "serial 8250 (COM1)", bytes: [1, 0, 3, 8, 0, 12, 0, 0])])

    @Test("a state file reads back as written")
    func roundTrip() throws {
        #expect(try SnapshotState.decode(Self.sample.encode()) == Self.sample)
    }

    @Test("CRC-64/XZ gives the catalogue's check value")
    func crcCheckValue() {
        #expect(CRC64.checksum(Array("123456789".utf8)) == 0x995d_c9bb_df19_39fa)
    }

    @Test("any damaged byte is refused as damaged (or as what it breaks), never believed")
    func everyByteFlipped() {
        let bytes = Self.sample.encode()
        for offset in stride(from: 0, to: bytes.count, by: 5) {
            var damaged = bytes
            damaged[offset] ^= 0x41
            #expect(throws: SnapshotFormatError.self, "byte \(offset)") { try SnapshotState.decode(damaged) }
        }
    }

    @Test("every truncation is refused")
    func everyTruncation() {
        let bytes = Self.sample.encode()
        for length in stride(from: 0, to: bytes.count, by: 3) {
            #expect(throws: SnapshotFormatError.self, "\(length) bytes") { try SnapshotState.decode(Array(bytes.prefix(length))) }
        }
    }

    @Test("a foreign file, another version and trailing bytes are named")
    func namedRefusals() throws {
        #expect(throws: SnapshotFormatError("not a Tandem snapshot state file (no TANDEMVM magic)")) { try SnapshotState.decode(Array("QEVM".utf8)) }
        var future = Self.sample.encode()
        future[8] = 3
        #expect(throws: SnapshotFormatError("format version 3; this Tandem reads version 2 only")) { try SnapshotState.decode(future) }
        var padded = Self.sample.encode()
        padded.insert(0, at: padded.count - 8)
        #expect(throws: SnapshotFormatError.self) { try SnapshotState.decode(padded) }
    }

    /// A file whose CRC is right but whose fields lie: the CRC is no defence against a crafted
    /// file, so the counts and sizes must be.
    func crafted(_ edit: (inout SnapshotState) -> Void) -> [UInt8] {
        var state = Self.sample
        edit(&state)
        return state.encode()
    }

    @Test("crafted counts and sizes are refused before anything is allocated for them")
    func craftedFields() throws {
        // 2^32-1 vCPUs: the count is patched into a valid file and the CRC recomputed.
        var bytes = Self.sample.encode()
        let vcpuCountOffset = try #require(Self.offsetOfVCPUCount(bytes))
        for index in 0..<4 { bytes[vcpuCountOffset + index] = 0xff }
        bytes.replaceSubrange((bytes.count - 8)..., with: withUnsafeBytes(of: CRC64.checksum(bytes.dropLast(8)).littleEndian, Array.init))
        #expect(throws: SnapshotFormatError("4294967295 vCPUs: at most 256")) { try SnapshotState.decode(bytes) }

        #expect(throws: SnapshotFormatError("its RAM ranges hold 16777216 bytes, not the 32 MiB it claims")) {
            try SnapshotState.decode(crafted { $0.machine.memoryMiB = 32 })
        }
        #expect(throws: SnapshotFormatError.self) { try SnapshotState.decode(crafted { $0.machine.ranges = [.init(start: 1, size: 16 << 20)] }) }
        #expect(throws: SnapshotFormatError("vCPU 0 has id 5 (ids run 0, 1, ...)")) { try SnapshotState.decode(crafted { $0.vcpus[0].id = 5 }) }
        #expect(throws: SnapshotFormatError("vCPU 0 holds KVM state kind 1 twice")) {
            try SnapshotState.decode(crafted { $0.vcpus[0].blobs[1].kind = 1 })
        }
        #expect(throws: SnapshotFormatError("machine kind 2: this Tandem restores tiny (0) and Linux (1) guests")) {
            try SnapshotState.decode(crafted { $0.machine.kind = 2 })
        }
        #expect(throws: SnapshotFormatError("it holds no vCPU")) { try SnapshotState.decode(crafted { $0.vcpus = [] }) }
    }

    static let mac: [UInt8] = [0x02, 0x0a, 0xbc, 0x00, 0x01, 0xff]

    @Test("network interfaces and a vsock read back; a tap name that is no interface's, a Tandem tap not named tandemN, a short MAC, a tap named twice, a relative or overlong socket path and a reserved CID are refused")
    func interfaces() throws {
        var withNets = Self.sample
        withNets.machine.nets = [.init(origin: .tandem, name: "tandem7", mac: Self.mac), .init(origin: .user, name: "lab-tap.0", mac: Self.mac),
                                 .init(origin: .bridge, name: "tvvm41c69b043e", mac: Self.mac, address: "172.29.0.254")]
        #expect(try SnapshotState.decode(withNets.encode()) == withNets)
        #expect(withNets.machine.nets[0].macText == "02:0a:bc:00:01:ff")
        for (nets, message) in [([SnapshotState.Net(origin: .tandem, name: "tandem256", mac: Self.mac)], "interface 0: tap name tandem256 is not tandemN (N 0 to 255)"),
                                ([.init(origin: .tandem, name: "tandem07", mac: Self.mac)], "interface 0: tap name tandem07 is not tandemN (N 0 to 255)"),
                                ([.init(origin: .tandem, name: "eth0", mac: Self.mac)], "interface 0: tap name eth0 is not tandemN (N 0 to 255)"),
                                ([.init(origin: .user, name: "../../x", mac: Self.mac)], "interface 0: tap name ../../x is not an interface name (1 to 15 letters, digits, '-', '_', '.')"),
                                ([.init(origin: .user, name: "a-very-long-name", mac: Self.mac)], "interface 0: tap name a-very-long-name is not an interface name (1 to 15 letters, digits, '-', '_', '.')"),
                                ([.init(origin: .user, name: "tap0", mac: [2, 0, 0])], "interface 0: its MAC address is 3 bytes, not 6"),
                                ([.init(origin: .user, name: "tap0", mac: Self.mac), .init(origin: .user, name: "tap0", mac: Self.mac)], "interface 1: tap tap0 is named twice"),
                                ([.init(origin: .bridge, name: "eth0", mac: Self.mac, address: "172.29.0.2")], "interface 0: tap name eth0 is not a bridge tap's name (tvID)"),
                                ([.init(origin: .bridge, name: "tvvm1234", mac: Self.mac, address: "172.29.0.02")], "interface 0: address \"172.29.0.02\" is not an IPv4 address"),
                                ([.init(origin: .bridge, name: "tvvm1234", mac: Self.mac, address: "")], "interface 0: address \"\" is not an IPv4 address"),
                                ([.init(origin: .user, name: "tap0", mac: Self.mac, address: "10.0.0.1")], "interface 0: address \"10.0.0.1\" on a tap that is not the bridge's")] {
            #expect(throws: SnapshotFormatError(message)) { try SnapshotState.decode(crafted { $0.machine.nets = nets }) }
        }
        var withVsock = Self.sample
        withVsock.machine.vsock = .init(path: "/run/tandem/v.sock", guestCID: 3)
        #expect(try SnapshotState.decode(withVsock.encode()) == withVsock)
        for (vsock, message) in [(SnapshotState.Vsock(path: "v.sock", guestCID: 3), "vsock path \"v.sock\": not an absolute socket path of at most 107 bytes"),
                                 (.init(path: "/" + String(repeating: "x", count: 107), guestCID: 3), "vsock path \"/\(String(repeating: "x", count: 107))\": not an absolute socket path of at most 107 bytes"),
                                 (.init(path: "/a\0b", guestCID: 3), "vsock path \"/a\\0b\": not an absolute socket path of at most 107 bytes"),
                                 (.init(path: "/v.sock", guestCID: 2), "vsock guest CID 2: must be from 3 to 4294967294"),
                                 (.init(path: "/v.sock", guestCID: 0xffff_ffff), "vsock guest CID 4294967295: must be from 3 to 4294967294")] {
            #expect(throws: SnapshotFormatError(message)) { try SnapshotState.decode(crafted { $0.machine.vsock = vsock }) }
        }
        #expect(throws: SnapshotFormatError("interface 0 MAC address is 7 bytes: at most 6")) {
            try SnapshotState.decode(crafted { $0.machine.nets = [.init(origin: .user, name: "tap0", mac: Array(repeating: 2, count: 7))] })
        }
    }

    /// Where the vCPU count sits in `sample`'s encoding: after the machine and host records.
    static func offsetOfVCPUCount(_ bytes: [UInt8]) -> Int? {
        let machineAndHost = 1 + (4 + 10) + 4 + 4 + 4 + 16 + 4 + 4 + 1 + (4 + 12) + 4 + 5 * 4 + 4
        let offset = 8 + 4 + 8 + machineAndHost
        return offset + 4 <= bytes.count && bytes[offset] == 1 ? offset : nil
    }
}
