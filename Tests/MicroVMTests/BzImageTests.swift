import BootLoader
import Glibc
import GuestMemory
import HostOS
import Testing

/// A minimal synthetic bzImage: a valid setup header (protocol 2.15, 64-bit) and a payload.
func syntheticBzImage(setupSectors: UInt8 = 4, version: UInt16 = 0x020f, payload: Int = 8192,
                      initSize: UInt32 = 0x10000, initrdMax: UInt32 = 0x7fff_ffff, cmdlineSize: UInt32 = 2047) -> [UInt8] {
    let setupBytes = (Int(setupSectors == 0 ? 4 : setupSectors) + 1) * 512  // 0 means 4, as the protocol says
    var image = [UInt8](repeating: 0, count: setupBytes + payload)
    func put<T: FixedWidthInteger>(_ value: T, _ offset: Int) {
        for index in 0..<MemoryLayout<T>.size { image[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
    typealias O = BzImageHeader.Offset
    put(setupSectors, O.setupSects)
    put(UInt16(0xaa55), O.bootFlag)
    put(UInt8(0xeb), O.jump)
    put(UInt8(0x6a), O.jump + 1)  // header ends at 0x26c
    put(UInt32(0x5372_6448), O.magic)
    put(version, O.version)
    put(UInt8(0x01), O.loadFlags)
    put(initrdMax, O.initrdAddrMax)
    put(UInt32(0x20_0000), O.kernelAlignment)
    put(UInt8(1), O.relocatableKernel)
    put(UInt16(0x7f), O.xloadFlags)
    put(cmdlineSize, O.cmdlineSize)
    put(UInt64(0x100_0000), O.prefAddress)
    put(initSize, O.initSize)
    put(UInt32((payload + 15) / 16), O.sysSize)
    for index in setupBytes..<image.count { image[index] = UInt8(truncatingIfNeeded: index) }
    return image
}

@Suite("bzImage header validation")
struct BzImageHeaderTests {
    @Test("a well-formed header parses field by field")
    func parse() throws {
        let header = try BzImageHeader.parse(syntheticBzImage(), name: "k")
        #expect(header.setupSectors == 4 && header.setupBytes == 2560)
        #expect(header.versionText == "2.15")
        #expect(header.initSize == 0x10000 && header.commandLineSize == 2047 && header.relocatable)
        #expect(header.bytes.count == 0x26c - 0x1f1)
        #expect(try BzImageHeader.parse(syntheticBzImage(setupSectors: 0), name: "k").setupSectors == 4)
    }

    @Test("malformed images are refused with the reason", arguments: [
        ("truncated to 0x100 bytes", 0),
        ("flipped magic", 1),
        ("no boot flag", 2),
        ("protocol 2.00", 3),
        ("no 64-bit entry", 4),
        ("zImage", 5),
        ("setup longer than the file", 6),
        ("payload shorter than syssize (a file cut short)", 7),
        ("setup_sects 0xff (the payload's start misplaced)", 8),
        ("syssize 0", 9),
    ])
    func malformed(label: String, kind: Int) {
        var image = syntheticBzImage()
        switch kind {
        case 0: image = Array(image.prefix(0x100))
        case 1: image[0x202] ^= 0xff
        case 2: image[0x1fe] = 0
        case 3: image[0x206] = 0; image[0x207] = 2
        case 4: image[0x236] = 0
        case 5: image[0x211] = 0
        case 6: image = Array(image.prefix(0x300)); image[0x1f1] = 60
        case 7: image = Array(image.prefix(image.count - 100))
        case 8: image = syntheticBzImage(payload: 200_000); image[0x1f1] = 0xff
        default: image[0x1f4] = 0; image[0x1f5] = 0
        }
        #expect(throws: BootLoaderError.self, "\(label)") { try BzImageHeader.parse(image, name: "bad") }
    }

    @Test("random bytes are never taken for a kernel")
    func randomBytes() {
        var generator = SystemRandomNumberGenerator()
        for size in [0, 1, 0x263, 0x264, 4096, 100_000] {
            let image = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
            #expect(throws: BootLoaderError.self) { try BzImageHeader.parse(image, name: "random") }
        }
    }

    @Test("errors name the image and the fix")
    func messages() {
        var image = syntheticBzImage()
        image[0x236] = 0
        #expect(throws: BootLoaderError.not64Bit(image: "vmlinuz")) { try BzImageHeader.parse(image, name: "vmlinuz") }
        #expect(BootLoaderError.not64Bit(image: "vmlinuz").description.contains("build it for x86_64"))
        #expect(BootLoaderError.protocolTooOld(image: "k", version: "2.2").description.contains("2.12 or later"))
        let cut = Array(syntheticBzImage().dropLast(4096))
        #expect {
            try BzImageHeader.parse(cut, name: "vmlinuz")
        } throws: { error in
            "\(error)".contains("vmlinuz") && "\(error)".contains("syssize (0x1f4) says 8192") && "\(error)".contains("setup_sects 4 at 0x1f1")
        }
    }

    static let cloudKernel: String? = {
        guard let directory = opendir("/boot") else { return nil }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("vmlinuz-"), name.hasSuffix("-cloud-amd64") { return "/boot/" + name }
        }
        return nil
    }()

    @Test("Debian's cloud kernel parses", .enabled(if: cloudKernel != nil, "needs linux-image-cloud-amd64 in /boot"))
    func realKernel() throws {
        let header = try BzImageHeader.parse(try Files.read(Self.cloudKernel!), name: Self.cloudKernel!)
        #expect(header.version >= 0x020f)
        #expect(header.relocatable)
        #expect(header.initSize > 0 && header.commandLineSize >= 2047)
    }
}

@Suite("Linux loader: memory layout and the zero page")
struct LinuxLoaderTests {
    func u32(_ page: [UInt8], _ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(page[offset + $1]) << (8 * $1) } }
    func u64(_ page: [UInt8], _ offset: Int) -> UInt64 { UInt64(u32(page, offset)) | UInt64(u32(page, offset + 4)) << 32 }

    @Test("kernel at 1 MiB, initrd page-aligned at the top of RAM, zero page bytes as the protocol says")
    func load() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 64 << 20)])
        let image = syntheticBzImage()
        let initrd = [UInt8](repeating: 0xab, count: 10_000)
        let boot = try LinuxLoader.load(kernel: image, kernelName: "k", initrd: initrd, commandLine: "console=ttyS0 quiet", into: memory)
        #expect(boot.entry == GuestAddress(0x10_0200))
        #expect(boot.bootParams == GuestAddress(0x7000))
        #expect(try memory.read(16, at: GuestAddress(0x10_0000)) == Array(image[2560..<2576]))
        let initrdAddress = try #require(boot.initrd?.address)
        #expect(initrdAddress.value == ((64 << 20) - 10_000) & ~0xfff)
        #expect(try memory.read(4, at: initrdAddress) == [0xab, 0xab, 0xab, 0xab])
        #expect(try memory.read(20, at: GuestAddress(0x20000)) == Array("console=ttyS0 quiet".utf8) + [0])

        let page = try memory.read(4096, at: GuestAddress(0x7000))
        #expect(page[0x210] == 0xff)                          // type_of_loader: undefined
        #expect(page[0x211] == 0x81)                          // LOADED_HIGH | CAN_USE_HEAP
        #expect(u32(page, 0x202) == 0x5372_6448)              // the kernel's own header, copied
        #expect(u32(page, 0x228) == 0x20000)                  // cmd_line_ptr
        #expect(u32(page, 0x218) == UInt32(initrdAddress.value))
        #expect(u32(page, 0x21c) == 10_000)
        #expect(page[0x1e8] == 3)                             // e820 entries
        #expect(u64(page, 0x2d0) == 0 && u64(page, 0x2d8) == 0x9fc00 && u32(page, 0x2e0) == 1)
        #expect(u64(page, 0x2e4) == 0x9fc00 && u64(page, 0x2ec) == 0x10_0000 - 0x9fc00 && u32(page, 0x2f4) == 2)
        #expect(u64(page, 0x2f8) == 0x10_0000 && u64(page, 0x300) == (64 << 20) - 0x10_0000 && u32(page, 0x308) == 1)
        #expect(page[0x30c...].allSatisfy { $0 == 0 })
    }

    @Test("initrd_addr_max caps where the initrd goes")
    func initrdCeiling() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 64 << 20)])
        let boot = try LinuxLoader.load(kernel: syntheticBzImage(initrdMax: 0x1ff_ffff), kernelName: "k", initrd: [1, 2, 3],
                                        commandLine: "", into: memory)
        #expect(boot.initrd?.address == GuestAddress(0x1ff_f000))
    }

    @Test("too big, too long and too small are refused with numbers")
    func refusals() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 4 << 20)])
        #expect(throws: BootLoaderError.commandLineTooLong(length: 3000, maximum: 2047)) {
            try LinuxLoader.load(kernel: syntheticBzImage(), kernelName: "k", initrd: nil,
                                 commandLine: String(repeating: "x", count: 3000), into: memory)
        }
        #expect(throws: BootLoaderError.self) {
            try LinuxLoader.load(kernel: syntheticBzImage(), kernelName: "k", initrd: [UInt8](repeating: 0, count: 3 << 20),
                                 commandLine: "", into: memory)
        }
        #expect(throws: BootLoaderError.kernelTooLarge(image: "k", needed: 0x10_0000 + 0x80_0000, memoryEnd: 4 << 20)) {
            try LinuxLoader.load(kernel: syntheticBzImage(initSize: 0x80_0000), kernelName: "k", initrd: nil, commandLine: "", into: memory)
        }
    }
}
