import GuestABI
import GuestMemory

/// x86 architectural constants and the pure parts of CPU setup (descriptor and page-table bytes).
/// Nothing here touches KVM, so all of it is unit-tested byte for byte.
/// Reference: Intel SDM vol. 3A, ch. 2 (control registers), 3.4.5 (segment descriptors), 4.5 (paging).
public enum X86 {
    // CR0
    public static let cr0ProtectionEnable: UInt64 = 1 << 0
    public static let cr0MonitorCoprocessor: UInt64 = 1 << 1
    public static let cr0ExtensionType: UInt64 = 1 << 4
    public static let cr0NumericError: UInt64 = 1 << 5
    public static let cr0Paging: UInt64 = 1 << 31
    // CR4
    public static let cr4PhysicalAddressExtension: UInt64 = 1 << 5
    // EFER (MSR 0xc0000080)
    public static let eferLongModeEnable: UInt64 = 1 << 8
    public static let eferLongModeActive: UInt64 = 1 << 10
    /// RFLAGS bit 1 is reserved and always reads 1.
    public static let rflagsReserved: UInt64 = 1 << 1

    // Page-table entry bits
    public static let pagePresent: UInt64 = 1 << 0
    public static let pageWritable: UInt64 = 1 << 1
    public static let pageSize: UInt64 = 1 << 7  // in a PD entry: this is a 2 MiB page

    public static let twoMiB: UInt64 = 2 << 20
    public static let oneGiB: UInt64 = 1 << 30
    public static let pageBytes = 4096

    /// Selectors of the flat GDT (index << 3, GDT, ring 0).
    public static let codeSelector: UInt16 = 0x08
    public static let dataSelector: UInt16 = 0x10
    public static let taskSelector: UInt16 = 0x18

    /// Identity-maps guest-physical [0, gibibytes GiB) with 2 MiB pages: one PML4, one PDPT and
    /// one page directory per GiB, written straight into guest RAM (each table page cleared, then
    /// its entries stored: no page is built on the host first). Returns the table pages' addresses.
    @discardableResult
    public static func writeIdentityPageTables(gibibytes: Int, pml4: GuestAddress, pdpt: GuestAddress,
                                               firstPageDirectory: GuestAddress, into memory: GuestMemory) throws(GuestMemoryError) -> [GuestAddress] {
        precondition((1...512).contains(gibibytes), "one PDPT maps at most 512 GiB")
        func table(_ address: GuestAddress) throws(GuestMemoryError) -> UnsafeMutablePointer<UInt64> {
            let page = try memory.hostPointer(address, length: pageBytes)
            page.initializeMemory(as: UInt8.self, repeating: 0, count: pageBytes)
            return page.bindMemory(to: UInt64.self, capacity: pageBytes / 8)
        }
        try table(pml4)[0] = (pdpt.value | pagePresent | pageWritable).littleEndian
        let pdptEntries = try table(pdpt)
        var addresses = [pml4, pdpt]
        for gib in 0..<gibibytes {
            let directory = GuestAddress(firstPageDirectory.value + UInt64(gib * pageBytes))
            pdptEntries[gib] = (directory.value | pagePresent | pageWritable).littleEndian
            let entries = try table(directory)
            for entry in 0..<512 {
                let frame = UInt64(gib) * oneGiB + UInt64(entry) * twoMiB
                entries[entry] = (frame | pagePresent | pageWritable | pageSize).littleEndian
            }
            addresses.append(directory)
        }
        return addresses
    }

    /// The tiny guest's page tables at the addresses tandem_guest_abi.h fixes (first 4 GiB).
    @discardableResult
    public static func writeTinyPageTables(into memory: GuestMemory) throws(GuestMemoryError) -> [GuestAddress] {
        try writeIdentityPageTables(gibibytes: 4, pml4: GuestAddress(UInt64(TANDEM_TINY_PML4_ADDR)),
                                    pdpt: GuestAddress(UInt64(TANDEM_TINY_PDPT_ADDR)),
                                    firstPageDirectory: GuestAddress(UInt64(TANDEM_TINY_PD_ADDR)), into: memory)
    }

    /// A flat GDT for 64-bit code: null, 64-bit code, data, and a TSS descriptor (VMX refuses entry
    /// without a usable task register), the same shape Firecracker and kvmtool use.
    public static func flatGDT() -> [SegmentDescriptor] {
        [
            SegmentDescriptor(encoded: 0),
            SegmentDescriptor(base: 0, limit: 0xfffff, type: 0xb, system: false, privilege: 0,
                              present: true, longMode: true, defaultSize32: false, granularity4K: true),
            SegmentDescriptor(base: 0, limit: 0xfffff, type: 0x3, system: false, privilege: 0,
                              present: true, longMode: false, defaultSize32: true, granularity4K: true),
            SegmentDescriptor(base: 0, limit: 0xfffff, type: 0xb, system: true, privilege: 0,
                              present: true, longMode: false, defaultSize32: false, granularity4K: true),
        ]
    }

    /// The GDT as the bytes that go into guest memory.
    public static func gdtBytes(_ descriptors: [SegmentDescriptor]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: descriptors.count * 8)
        for (index, descriptor) in descriptors.enumerated() { store(descriptor.encoded, at: index * 8, in: &bytes) }
        return bytes
    }

    static func store(_ value: UInt64, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<8 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}

/// A legacy segment descriptor (8 bytes), encoded and decoded field by field (SDM 3.4.5).
/// `system` is the inverse of the S bit: true for system segments such as a TSS.
public struct SegmentDescriptor: Equatable, Sendable {
    public var base: UInt32
    public var limit: UInt32      // 20 bits
    public var type: UInt8        // 4 bits
    public var system: Bool
    public var privilege: UInt8   // DPL, 2 bits
    public var present: Bool
    public var longMode: Bool     // L
    public var defaultSize32: Bool // D/B
    public var granularity4K: Bool // G

    public init(base: UInt32, limit: UInt32, type: UInt8, system: Bool, privilege: UInt8, present: Bool,
                longMode: Bool, defaultSize32: Bool, granularity4K: Bool) {
        self.base = base
        self.limit = limit & 0xfffff
        self.type = type & 0xf
        self.system = system
        self.privilege = privilege & 3
        self.present = present
        self.longMode = longMode
        self.defaultSize32 = defaultSize32
        self.granularity4K = granularity4K
    }

    public init(encoded value: UInt64) {
        base = UInt32((value >> 16) & 0xffffff) | UInt32((value >> 56) & 0xff) << 24
        limit = UInt32(value & 0xffff) | UInt32((value >> 48) & 0xf) << 16
        type = UInt8((value >> 40) & 0xf)
        system = (value >> 44) & 1 == 0
        privilege = UInt8((value >> 45) & 3)
        present = (value >> 47) & 1 == 1
        longMode = (value >> 53) & 1 == 1
        defaultSize32 = (value >> 54) & 1 == 1
        granularity4K = (value >> 55) & 1 == 1
    }

    public var encoded: UInt64 {
        var value = UInt64(limit & 0xffff)
        value |= UInt64(base & 0xffffff) << 16
        value |= UInt64(type) << 40
        value |= (system ? 0 : 1) << 44
        value |= UInt64(privilege) << 45
        value |= (present ? 1 : 0) << 47
        value |= UInt64((limit >> 16) & 0xf) << 48
        value |= (longMode ? 1 : 0) << 53
        value |= (defaultSize32 ? 1 : 0) << 54
        value |= (granularity4K ? 1 : 0) << 55
        value |= UInt64(base >> 24) << 56
        return value
    }

    /// The limit in bytes as the CPU applies it (4 KiB granularity scales it).
    public var effectiveLimit: UInt32 { granularity4K ? (limit << 12) | 0xfff : limit }
}
