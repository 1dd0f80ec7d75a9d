import GuestABI
import GuestMemory
@testable import MicroVM
import Testing

@Suite("x86 setup: descriptors and page tables")
struct X86Tests {
    func entry(_ bytes: [UInt8], _ index: Int) -> UInt64 {
        (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[index * 8 + $1]) << (8 * $1) }
    }

    @Test("the flat GDT encodes to the well-known descriptor values")
    func gdtEncoding() {
        let bytes = X86.gdtBytes(X86.flatGDT())
        #expect(bytes.count == 32)
        #expect(entry(bytes, 0) == 0)
        #expect(entry(bytes, 1) == 0x00af_9b00_0000_ffff)  // 64-bit code: P, S, type 0xb, L, G
        #expect(entry(bytes, 2) == 0x00cf_9300_0000_ffff)  // data: P, S, type 0x3, D/B, G
        #expect(entry(bytes, 3) == 0x008f_8b00_0000_ffff)  // busy 64-bit TSS, system segment
    }

    @Test("descriptors round-trip through their encoding")
    func descriptorRoundTrip() {
        let descriptor = SegmentDescriptor(base: 0x1234_5678, limit: 0xabcde, type: 0x9, system: true, privilege: 3,
                                           present: true, longMode: false, defaultSize32: true, granularity4K: false)
        #expect(SegmentDescriptor(encoded: descriptor.encoded) == descriptor)
        #expect(descriptor.effectiveLimit == 0xabcde)
        #expect(X86.flatGDT()[1].effectiveLimit == 0xffff_ffff)
    }

    @Test("page tables identity-map 4 GiB with 2 MiB pages at the ABI's addresses, over whatever RAM held before")
    func pageTables() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 1 << 20)])
        // Stale bytes where the tables go: every entry not written must read as zero.
        try memory.write([UInt8](repeating: 0xa5, count: 0x8000), at: GuestAddress(0))
        let tables = try X86.writeTinyPageTables(into: memory)
        #expect(tables.map(\.value) == [0x2000, 0x3000, 0x4000, 0x5000, 0x6000, 0x7000])
        func tableEntry(_ table: Int, _ index: Int) throws -> UInt64 {
            try memory.read(UInt64.self, at: GuestAddress(tables[table].value + UInt64(index * 8)))
        }
        #expect(try tableEntry(0, 0) == 0x3003)
        #expect(try (1..<512).allSatisfy { try tableEntry(0, $0) == 0 })
        #expect(try (0..<4).map { try tableEntry(1, $0) } == [0x4003, 0x5003, 0x6003, 0x7003])
        #expect(try (4..<512).allSatisfy { try tableEntry(1, $0) == 0 })
        #expect(try tableEntry(2, 0) == 0x83)
        #expect(try tableEntry(2, 1) == 0x20_0083)
        #expect(try tableEntry(5, 511) == 0xffe0_0083)  // the last 2 MiB below 4 GiB
        // Every table lies below the load address, so an image can never overwrite them.
        #expect(tables.allSatisfy { $0.value + 4096 <= UInt64(TANDEM_TINY_LOAD_ADDR) })
        #expect(UInt64(TANDEM_TINY_GDT_ADDR) + 32 <= tables[0].value)
    }
}

@Suite("Guest memory and the flat loader")
struct GuestMemoryTests {
    @Test("reads and writes are bounds-checked by guest address")
    func bounds() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 1 << 20)])
        try memory.write([1, 2, 3], at: GuestAddress(0xffffd))
        #expect(try memory.read(3, at: GuestAddress(0xffffd)) == [1, 2, 3])
        try memory.write(UInt32(0xdead_beef), at: GuestAddress(0x100))
        #expect(try memory.read(UInt32.self, at: GuestAddress(0x100)) == 0xdead_beef)
        #expect(try memory.read(1, at: GuestAddress(0x100)) == [0xef])
        #expect(throws: GuestMemoryError.outOfBounds(address: GuestAddress(0xffffe), length: 3)) {
            try memory.write([1, 2, 3], at: GuestAddress(0xffffe))
        }
        #expect(throws: GuestMemoryError.self) { try memory.read(1, at: GuestAddress(UInt64.max)) }
        #expect(throws: GuestMemoryError.self) { try memory.read(2, at: GuestAddress(UInt64.max - 1)) }
    }

    @Test("overlapping RAM ranges are refused")
    func overlap() {
        #expect(throws: GuestMemoryError.self) {
            try GuestMemory(ranges: [(GuestAddress(0), 8192), (GuestAddress(4096), 4096)])
        }
    }
}
