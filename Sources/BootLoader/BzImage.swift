import GuestMemory

/// The Linux x86 boot protocol's setup header (Documentation/arch/x86/boot.rst), read from the
/// bzImage file where it sits at offset 0x1f1 and validated field by field.
public struct BzImageHeader: Equatable, Sendable {
    /// Offsets into the bzImage file (equal to those in boot_params: the header is copied over).
    public enum Offset {
        public static let setupSects = 0x1f1
        /// The protected-mode payload's size in 16-byte units (protocol 2.04+: 32 bits).
        public static let sysSize = 0x1f4
        public static let bootFlag = 0x1fe
        public static let jump = 0x200          // a short jump; its byte at 0x201 gives the header's length
        public static let magic = 0x202
        public static let version = 0x206
        public static let typeOfLoader = 0x210
        public static let loadFlags = 0x211
        public static let ramdiskImage = 0x218
        public static let ramdiskSize = 0x21c
        public static let heapEndPtr = 0x224
        public static let cmdLinePtr = 0x228
        public static let initrdAddrMax = 0x22c
        public static let kernelAlignment = 0x230
        public static let relocatableKernel = 0x234
        public static let xloadFlags = 0x236
        public static let cmdlineSize = 0x238
        public static let prefAddress = 0x258
        public static let initSize = 0x260
        /// The header must reach at least init_size (protocol 2.10+).
        public static let minimumEnd = 0x264
    }

    public static let bootFlagValue: UInt16 = 0xaa55
    public static let magicValue: UInt32 = 0x5372_6448  // "HdrS"
    /// 2.12: xloadflags, and with XLF_KERNEL_64 the 64-bit entry point (Linux 3.8).
    public static let minimumVersion: UInt16 = 0x020c
    public static let loadedHigh: UInt8 = 0x01
    public static let canUseHeap: UInt8 = 0x80
    public static let xlfKernel64: UInt16 = 0x01

    public var setupSectors: Int
    public var version: UInt16
    public var loadFlags: UInt8
    public var xloadFlags: UInt16
    public var initrdAddressMax: UInt32
    /// The longest command line the kernel accepts, without its NUL.
    public var commandLineSize: UInt32
    public var kernelAlignment: UInt32
    public var relocatable: Bool
    public var preferredAddress: UInt64
    /// Bytes the kernel needs from its load address while it decompresses and starts.
    public var initSize: UInt32
    /// The header bytes as they are copied into boot_params (0x1f1 to the header's end).
    public var bytes: [UInt8]

    /// Size of the real-mode part (boot sector + setup), which is not loaded for a 64-bit entry.
    public var setupBytes: Int { (setupSectors + 1) * 512 }

    public var versionText: String { "\(version >> 8).\(version & 0xff)" }

    /// Parses and validates; every error names the image and what is wrong with it.
    /// `image` holds at least the file's first 4 KiB (or all of it); `fileSize` is the whole
    /// file's size when `image` is only its beginning.
    public static func parse(_ image: [UInt8], fileSize: Int? = nil, name: String) throws(BootLoaderError) -> BzImageHeader {
        let fileSize = fileSize ?? image.count
        func u8(_ offset: Int) -> UInt8 { image[offset] }
        func u16(_ offset: Int) -> UInt16 { UInt16(image[offset]) | UInt16(image[offset + 1]) << 8 }
        func u32(_ offset: Int) -> UInt32 { (0..<4).reduce(0) { $0 | UInt32(image[offset + $1]) << (8 * $1) } }
        func u64(_ offset: Int) -> UInt64 { UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32 }

        guard image.count >= Offset.minimumEnd else {
            throw .notBzImage(image: name, reason: "it is \(fileSize) bytes, too short to hold a setup header")
        }
        guard u16(Offset.bootFlag) == bootFlagValue, u32(Offset.magic) == magicValue else {
            throw .notBzImage(image: name, reason: "no boot flag 0xAA55 at 0x1fe and \"HdrS\" at 0x202")
        }
        let version = u16(Offset.version)
        guard version >= minimumVersion else {
            throw .protocolTooOld(image: name, version: "\(version >> 8).\(version & 0xff)")
        }
        var sectors = Int(u8(Offset.setupSects))
        if sectors == 0 { sectors = 4 }
        let headerEnd = 0x202 + Int(u8(Offset.jump + 1))
        guard headerEnd >= Offset.minimumEnd, headerEnd <= image.count else {
            throw .notBzImage(image: name, reason: "its setup header ends at 0x\(String(headerEnd, radix: 16)), outside the file or before init_size")
        }
        let header = BzImageHeader(
            setupSectors: sectors, version: version, loadFlags: u8(Offset.loadFlags), xloadFlags: u16(Offset.xloadFlags),
            initrdAddressMax: u32(Offset.initrdAddrMax), commandLineSize: u32(Offset.cmdlineSize),
            kernelAlignment: u32(Offset.kernelAlignment), relocatable: u8(Offset.relocatableKernel) != 0,
            preferredAddress: u64(Offset.prefAddress), initSize: u32(Offset.initSize),
            bytes: Array(image[Offset.setupSects..<headerEnd]))
        guard header.loadFlags & loadedHigh != 0 else {
            throw .notBzImage(image: name, reason: "it is a zImage (not LOADED_HIGH); only bzImages can be booted")
        }
        guard header.xloadFlags & xlfKernel64 != 0 else {
            throw .not64Bit(image: name)
        }
        guard fileSize > header.setupBytes else {
            throw .notBzImage(image: name, reason: "it is truncated: \(fileSize) bytes, but its setup alone is \(header.setupBytes) (setup_sects \(u8(Offset.setupSects)) at 0x1f1)")
        }
        // The payload the header announces must be there: a file cut short (or a setup_sects that
        // puts the payload's start in the wrong place) would otherwise boot into garbage.
        let payload = fileSize - header.setupBytes
        let announced = Int(u32(Offset.sysSize)) * 16
        guard announced > 0, payload + 15 >= announced else {
            throw .notBzImage(image: name, reason: announced == 0
                ? "syssize (0x1f4) is 0: no protected-mode payload"
                : "it is truncated or inconsistent: \(payload) bytes follow its \(header.setupBytes)-byte setup (setup_sects \(u8(Offset.setupSects)) at 0x1f1), but syssize (0x1f4) says \(announced)")
        }
        return header
    }
}
