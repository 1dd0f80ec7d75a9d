import BootLoader
import Foundation
import GuestMemory
import Testing

/// The ACPI tables a Linux guest reads for its CPUs and legacy devices, checked byte by byte and,
/// where acpica-tools is installed, by Intel's own disassembler.
@Suite("ACPI tables")
struct ACPITests {
    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * $1) }
    }
    static func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }
    static func signature(_ bytes: [UInt8]) -> String { String(decoding: bytes[0..<4], as: UTF8.self) }

    @Test("every table sums to zero and states its own length", arguments: [1, 2, 8])
    func checksums(cpus: Int) {
        let tables = ACPITables.build(cpus: cpus)
        let rsdp = tables[0].bytes
        #expect(String(decoding: rsdp[0..<8], as: UTF8.self) == "RSD PTR ")
        #expect(rsdp[0..<20].reduce(UInt8(0), &+) == 0, "ACPI 1.0 checksum")
        #expect(rsdp.reduce(UInt8(0), &+) == 0, "extended checksum")
        for table in tables.dropFirst() {
            #expect(table.bytes.reduce(UInt8(0), &+) == 0, "\(Self.signature(table.bytes))")
            #expect(Int(Self.u32(table.bytes, 4)) == table.bytes.count)
        }
    }

    @Test("RSDP → XSDT → FACP and APIC; FACP → DSDT; tables do not overlap")
    func links() throws {
        let tables = ACPITables.build(cpus: 2)
        let byAddress = Dictionary(uniqueKeysWithValues: tables.map { ($0.address.value, $0.bytes) })
        let xsdt = try #require(byAddress[Self.u64(tables[0].bytes, 24)])
        #expect(Self.signature(xsdt) == "XSDT")
        let entries = stride(from: 36, to: xsdt.count, by: 8).map { Self.u64(xsdt, $0) }
        #expect(entries.compactMap { byAddress[$0].map(Self.signature) } == ["FACP", "APIC"])
        let fadt = try #require(byAddress[entries[0]])
        #expect(fadt.count == 276)
        #expect(Self.signature(try #require(byAddress[Self.u64(fadt, 140)])) == "DSDT")
        #expect(Self.u32(fadt, 112) & ACPITables.fadtHardwareReduced != 0)
        let sorted = tables.sorted { $0.address < $1.address }
        for (a, b) in zip(sorted, sorted.dropFirst()) {
            #expect(a.address.value + UInt64(a.bytes.count) <= b.address.value)
        }
        // Inside the BIOS area the e820 map reserves (0x9fc00..1 MiB).
        #expect(sorted.first!.address.value >= 0xe0000 && sorted.last!.address.value + UInt64(sorted.last!.bytes.count) <= 0x10_0000)
    }

    @Test("the MADT has one enabled local APIC per vCPU (APIC id = vCPU id) and the IOAPIC")
    func madt() throws {
        let madt = try #require(ACPITables.build(cpus: 3).first { Self.signature($0.bytes) == "APIC" }?.bytes)
        #expect(Self.u32(madt, 36) == 0xfee0_0000)
        var offset = 44
        var apics: [UInt8] = []
        var ioapic: UInt32?
        while offset < madt.count {
            let type = madt[offset], length = Int(madt[offset + 1])
            if type == 0 { apics.append(madt[offset + 3]); #expect(Self.u32(madt, offset + 4) == 1) }
            if type == 1 { ioapic = Self.u32(madt, offset + 4) }
            offset += length
        }
        #expect(offset == madt.count)
        #expect(apics == [0, 1, 2])
        #expect(ioapic == 0xfec0_0000)
    }

    @Test("EisaId packs as iasl does")
    func eisaID() {
        #expect(AML.eisaID("PNP0501") == 0x0105_d041)
        #expect(AML.eisaID("PNP0303") == 0x0303_d041)
    }

    @Test("iasl disassembles the DSDT to COM1, KBD0 and RTC0 with their ports and IRQs",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/iasl"), "needs iasl (apt-get install acpica-tools)"))
    func disassemble() throws {
        let source = try Self.disassembled(ACPITables.build(cpus: 1))
        for expected in ["Device (COM1)", "EisaId (\"PNP0501\")", "0x03F8,", "IRQNoFlags ()\n                    {4}",
                         "Device (KBD0)", "EisaId (\"PNP0303\")", "{1}", "Device (RTC0)", "EisaId (\"PNP0B00\")", "{8}"] {
            #expect(source.contains(expected), "\(expected) in\n\(source)")
        }
        #expect(!source.contains("LNRO0005"), "no drive, no virtio device")
    }

    @Test("--drive's virtio-mmio devices are in the DSDT as LNRO0005 with their window and an edge-triggered interrupt (iasl)",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/iasl"), "needs iasl (apt-get install acpica-tools)"))
    func virtioDevices() throws {
        let virtio = [AML.VirtioMMIO(base: 0xd000_0000, length: 0x1000, irq: 5), AML.VirtioMMIO(base: 0xd000_1000, length: 0x1000, irq: 6)]
        let tables = ACPITables.build(cpus: 2, virtio: virtio)
        for table in tables.dropFirst() { #expect(ACPITables.checksum(table.bytes[...]) == 0, "\(Self.signature(table.bytes)) checksum") }
        let source = try Self.disassembled(tables)
        for expected in ["Device (VR00)", "Device (VR01)", "Name (_HID, \"LNRO0005\")", "Name (_UID, 0x01)",
                         "Memory32Fixed (ReadWrite,\n                    0xD0000000,", "0xD0001000,", "0x00001000,",
                         "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )", "0x00000005,", "0x00000006,", "Device (COM1)"] {
            #expect(source.contains(expected), "\(expected) in\n\(source)")
        }
    }

    /// The DSDT of `tables`, as iasl disassembles it.
    static func disassembled(_ tables: [(address: GuestAddress, bytes: [UInt8])]) throws -> String {
        let dsdt = try #require(tables.first { Self.signature($0.bytes) == "DSDT" }?.bytes)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-acpi-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let aml = directory.appendingPathComponent("dsdt.aml")
        try Data(dsdt).write(to: aml)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/iasl")
        process.arguments = ["-d", aml.path]
        process.currentDirectoryURL = directory
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        return try String(contentsOf: directory.appendingPathComponent("dsdt.dsl"), encoding: .utf8)
    }
}
