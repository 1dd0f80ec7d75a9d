import GuestMemory

/// The smallest set of ACPI tables that tells Linux about every vCPU (ACPI 6.5, chapter 5):
/// RSDP → XSDT → FADT (hardware-reduced, with a DSDT naming the legacy devices) and MADT (one local APIC per vCPU
/// and the IOAPIC). The Debian cloud kernel ignores MP tables (X86_MPPARSE is off), so this is how
/// a Tandem guest learns it has more than one CPU — the same set Firecracker writes.
/// Pure bytes: the VMM copies them into guest memory and points the zero page at the RSDP.
public enum ACPITables {
    /// Where the tables go: the BIOS read-only area (reserved in the e820 map), where a kernel also
    /// finds the RSDP by scanning if the zero page's `acpi_rsdp_addr` is not read.
    public static let rsdpAddress = GuestAddress(0xe_0000)
    /// Where KVM's in-kernel local APIC and IOAPIC answer (their architectural defaults).
    public static let localAPICAddress: UInt32 = 0xfee0_0000
    public static let ioAPICAddress: UInt32 = 0xfec0_0000
    /// The IOAPIC's id: after the vCPUs' APIC ids 0..<count there is room up to 0xfe.
    public static func ioAPICID(cpus: Int) -> UInt8 { UInt8(cpus) }

    public static let oemID = Array("TANDEM".utf8)
    public static let oemTableID = Array("TANDEMVM".utf8)
    public static let creatorID = Array("TNDM".utf8)

    /// FADT flag: hardware-reduced ACPI — no PM timer, no SCI, no fixed hardware registers.
    public static let fadtHardwareReduced: UInt32 = 1 << 20
    /// FADT IA-PC boot architecture flag: an 8042 keyboard controller is present (Tandem's i8042
    /// is what `reboot=k` uses to end the VM).
    public static let bootArch8042: UInt16 = 1 << 1
    /// MADT flag: the PC/AT dual 8259 is present too (KVM's in-kernel irqchip has it).
    public static let madtPCATCompatible: UInt32 = 1

    /// Every table with its guest-physical address; the first is the RSDP at `rsdpAddress`.
    /// `virtio`: the virtio-mmio devices (register window, interrupt line), described in the DSDT
    /// so that a kernel without VIRTIO_MMIO_CMDLINE_DEVICES (Debian's) finds them.
    public static func build(cpus: Int, virtio: [AML.VirtioMMIO] = []) -> [(address: GuestAddress, bytes: [UInt8])] {
        precondition((1...254).contains(cpus), "one MADT local-APIC entry per vCPU, APIC ids below 0xff")
        // 16-byte aligned, one after another: RSDP (36), XSDT, DSDT, FADT, MADT.
        let dsdt = table(signature: "DSDT", revision: 2, body: AML.devices(virtio: virtio))
        let xsdtAddress = rsdpAddress + 0x40
        let dsdtAddress = xsdtAddress + 0x40
        let fadtAddress = dsdtAddress + UInt64(max(0x100, (dsdt.count + 15) & ~15))
        let madtAddress = fadtAddress + 0x120
        let fadt = table(signature: "FACP", revision: 6, body: fadtBody(dsdt: dsdtAddress))
        let madt = table(signature: "APIC", revision: 5, body: madtBody(cpus: cpus))
        let xsdt = table(signature: "XSDT", revision: 1, body: [fadtAddress.value, madtAddress.value].flatMap { littleEndian($0) })
        return [(rsdpAddress, rsdp(xsdt: xsdtAddress)), (xsdtAddress, xsdt), (dsdtAddress, dsdt),
                (fadtAddress, fadt), (madtAddress, madt)]
    }

    /// The Root System Description Pointer (ACPI 2.0+, 36 bytes, two checksums).
    static func rsdp(xsdt: GuestAddress) -> [UInt8] {
        var bytes = Array("RSD PTR ".utf8) + [0] + oemID + [2] + littleEndian(UInt32(0)) + littleEndian(UInt32(36))
            + littleEndian(xsdt.value) + [0, 0, 0, 0]
        bytes[8] = checksum(bytes[0..<20])
        bytes[32] = checksum(bytes[0..<36])
        return bytes
    }

    /// A system description table: the 36-byte header, then `body`, checksummed over the whole.
    static func table(signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        let length = UInt32(36 + body.count)
        var bytes = Array(signature.utf8) + littleEndian(length) + [revision, 0] + oemID + oemTableID
            + littleEndian(UInt32(1)) + creatorID + littleEndian(UInt32(1)) + body
        bytes[9] = checksum(bytes[...])
        return bytes
    }

    /// FADT (revision 6, 276 bytes) fields after the header: only what a hardware-reduced
    /// platform has — the DSDT pointer, the boot architecture flags and the flags.
    static func fadtBody(dsdt: GuestAddress) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 276 - 36)
        func put(_ bytes: [UInt8], at tableOffset: Int) { body.replaceSubrange((tableOffset - 36)..<(tableOffset - 36 + bytes.count), with: bytes) }
        put(littleEndian(UInt32(truncatingIfNeeded: dsdt.value)), at: 40)  // DSDT
        put(littleEndian(bootArch8042), at: 109)                            // IAPC_BOOT_ARCH
        put(littleEndian(fadtHardwareReduced), at: 112)                     // Flags
        put([5], at: 131)                                                   // FADT minor version (6.5)
        put(littleEndian(dsdt.value), at: 140)                              // X_DSDT
        put(littleEndian(0x4d56_4b4d_564b_4d56 as UInt64), at: 268)        // hypervisor vendor "VMKVMKVM"
        return body
    }

    /// MADT body: local APIC address and flags, then one processor local APIC (type 0) per vCPU
    /// and the IOAPIC (type 1) with global system interrupts from 0.
    static func madtBody(cpus: Int) -> [UInt8] {
        var body = littleEndian(localAPICAddress) + littleEndian(madtPCATCompatible)
        for cpu in 0..<cpus {
            body += [0, 8, UInt8(cpu), UInt8(cpu)] + littleEndian(UInt32(1))  // enabled
        }
        body += [1, 12, ioAPICID(cpus: cpus), 0] + littleEndian(ioAPICAddress) + littleEndian(UInt32(0))
        return body
    }

    /// The byte that makes `bytes` sum to zero (mod 256), given the checksum field holds 0.
    public static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt8 {
        UInt8(truncatingIfNeeded: 0 &- bytes.reduce(UInt8(0), &+))
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<MemoryLayout<T>.size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}

/// The little ACPI Machine Language the DSDT needs (ACPI 6.5, chapter 20). A hardware-reduced
/// kernel has no legacy PIC and maps no ISA interrupt on its own: each device that uses one must be
/// described with its ports and IRQ, or its driver cannot get the interrupt (the serial console
/// would stall as soon as userspace writes to it). So the DSDT lists, under \_SB, the devices
/// Tandem emulates: COM1 (PNP0501), the i8042 keyboard controller (PNP0303) and the CMOS RTC
/// (PNP0B00), and the virtio-mmio devices of `--drive` (LNRO0005).
public enum AML {
    static let nameOp: UInt8 = 0x08
    static let scopeOp: UInt8 = 0x10
    static let bufferOp: UInt8 = 0x11
    static let dwordPrefix: UInt8 = 0x0c
    static let bytePrefix: UInt8 = 0x0a
    static let zeroOp: UInt8 = 0x00
    static let extendedOpPrefix: UInt8 = 0x5b
    static let deviceOp: UInt8 = 0x82
    static let rootPrefix = UInt8(ascii: "\\")

    /// A virtio-mmio device as the DSDT describes it: its register window and its interrupt line.
    public struct VirtioMMIO: Equatable, Sendable {
        public var base: UInt32
        public var length: UInt32
        public var irq: UInt32
        public init(base: UInt32, length: UInt32, irq: UInt32) {
            self.base = base
            self.length = length
            self.irq = irq
        }
    }

    /// The ACPI id Linux's virtio_mmio driver matches (drivers/virtio/virtio_mmio.c, as QEMU's
    /// arm virt machine and Firecracker on aarch64 describe their devices).
    static let virtioMMIOHID = "LNRO0005"

    /// \_SB with the legacy devices and, after them, the virtio-mmio ones (VR00, VR01, ...).
    public static func devices(virtio: [VirtioMMIO] = []) -> [UInt8] {
        var devices = device("COM1", hid: eisaIDValue("PNP0501"), resources: io(0x3f8, length: 8) + irq(4))
            + device("KBD0", hid: eisaIDValue("PNP0303"), resources: io(0x60, length: 1) + io(0x64, length: 1) + irq(1))
            + device("RTC0", hid: eisaIDValue("PNP0B00"), resources: io(0x70, length: 2) + irq(8))
        for (index, mmio) in virtio.enumerated() {
            let name = "VR" + (index < 10 ? "0" : "") + String(index)
            devices += device(name, hid: string(virtioMMIOHID), uid: index,
                              resources: memory32Fixed(mmio.base, length: mmio.length) + edgeInterrupt(mmio.irq))
        }
        return [scopeOp] + packageLength(1 + 4 + devices.count) + [rootPrefix] + Array("_SB_".utf8) + devices
    }

    /// Device(NAME) { Name(_HID, hid) Name(_UID, uid) Name(_CRS, ResourceTemplate() { ... }) }
    static func device(_ name: String, hid: [UInt8], uid: Int = 0, resources: [UInt8]) -> [UInt8] {
        let template = resources + [0x79, 0x00]  // end tag; checksum 0 means "not checked"
        let buffer = [bufferOp] + packageLength(2 + template.count) + [bytePrefix, UInt8(template.count)] + template
        let body = Array(name.utf8)
            + [nameOp] + Array("_HID".utf8) + hid
            + [nameOp] + Array("_UID".utf8) + (uid == 0 ? [zeroOp] : [bytePrefix, UInt8(uid)])
            + [nameOp] + Array("_CRS".utf8) + buffer
        return [extendedOpPrefix, deviceOp] + packageLength(body.count) + body
    }

    /// EisaId(...) as a DWord constant.
    static func eisaIDValue(_ id: String) -> [UInt8] { [dwordPrefix] + ACPITables.littleEndian(eisaID(id)) }

    /// A string constant (StringPrefix, the bytes, NUL).
    static func string(_ text: String) -> [UInt8] { [0x0d] + Array(text.utf8) + [0] }

    /// Memory32Fixed(ReadWrite, base, length) (large resource descriptor 0x86).
    static func memory32Fixed(_ base: UInt32, length: UInt32) -> [UInt8] {
        [0x86, 0x09, 0x00, 0x01] + ACPITables.littleEndian(base) + ACPITables.littleEndian(length)
    }

    /// Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) { irq } (extended interrupt
    /// descriptor 0x89; flags bit 0 consumer, bit 1 edge): one edge per completion, which the VMM
    /// sends through an irqfd, as Firecracker does.
    static func edgeInterrupt(_ irq: UInt32) -> [UInt8] {
        [0x89, 0x06, 0x00, 0x03, 0x01] + ACPITables.littleEndian(irq)
    }

    /// A 16-bit-decoded fixed I/O range (small resource descriptor 0x47).
    static func io(_ base: UInt16, length: UInt8) -> [UInt8] {
        [0x47, 0x01] + ACPITables.littleEndian(base) + ACPITables.littleEndian(base) + [0x01, length]
    }

    /// An ISA IRQ, edge-triggered and active-high (small resource descriptor 0x22, IRQNoFlags).
    static func irq(_ number: Int) -> [UInt8] { [0x22] + ACPITables.littleEndian(UInt16(1) << number) }

    /// PkgLength for a package whose contents (after the length bytes) are `contents` bytes: the
    /// encoded length counts its own bytes too; one byte up to 63, else a lead byte plus more.
    static func packageLength(_ contents: Int) -> [UInt8] {
        if contents + 1 < 0x40 { return [UInt8(contents + 1)] }
        let total = contents + 2
        precondition(total < 0x1000, "two-byte PkgLength holds at most 4095")
        return [0x40 | UInt8(total & 0x0f), UInt8(total >> 4)]
    }

    /// EisaId("PNP0501"): three letters in five bits each, then four hex digits; stored so the
    /// bytes in memory read 41 D0 05 01.
    public static func eisaID(_ id: String) -> UInt32 {
        let chars = Array(id.utf8)
        precondition(chars.count == 7, "an EISA id is three letters and four hex digits")
        let vendor = UInt16(chars[0] - 0x40) << 10 | UInt16(chars[1] - 0x40) << 5 | UInt16(chars[2] - 0x40)
        let product = UInt16(String(decoding: chars[3...], as: UTF8.self), radix: 16)!
        return UInt32(vendor >> 8) | UInt32(vendor & 0xff) << 8 | UInt32(product >> 8) << 16 | UInt32(product & 0xff) << 24
    }
}
