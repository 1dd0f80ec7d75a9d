import GuestMemory

/// Where a Linux guest's boot pieces go in guest-physical memory (the same choices as Firecracker
/// and kvmtool): the zero page low, the command line after it, the kernel at 1 MiB, the initrd as
/// high as the kernel allows.
public enum LinuxLayout {
    /// boot_params, "the zero page".
    public static let bootParams = GuestAddress(0x7000)
    /// The kernel command line (NUL-terminated).
    public static let commandLine = GuestAddress(0x20000)
    /// Room reserved for the command line; the kernel's own limit (cmdline_size) is usually 2047.
    public static let commandLineCapacity = 0x10000
    /// The protected-mode kernel: 1 MiB, where a bzImage's 32/64-bit code expects to start.
    public static let kernel = GuestAddress(0x10_0000)
    /// The 64-bit entry point is 0x200 bytes into the protected-mode kernel.
    public static let entry64Offset: UInt64 = 0x200
    /// Low RAM ends where the PC's extended BIOS data area begins.
    public static let lowRAMEnd: UInt64 = 0x9fc00
    /// e820 types.
    public static let e820RAM: UInt32 = 1
    public static let e820Reserved: UInt32 = 2
    /// Linux's "undefined" boot loader id (0xff): Tandem has no assigned id.
    public static let loaderType: UInt8 = 0xff
}

/// boot_params field offsets outside the copied setup header (arch/x86/include/uapi/asm/bootparam.h).
public enum BootParamsOffset {
    /// acpi_rsdp_addr (boot protocol 2.14): where the RSDP is, so the kernel need not scan for it.
    public static let acpiRSDPAddress = 0x070
    public static let extRamdiskImage = 0x0c0
    public static let extRamdiskSize = 0x0c4
    public static let extCmdLinePtr = 0x0c8
    public static let e820Entries = 0x1e8
    public static let e820Table = 0x2d0
    public static let e820MaxEntries = 128
    public static let size = 4096
}

/// A Linux kernel loaded and ready to enter: the VMM sets RIP = `entry`, RSI = `bootParams`.
public struct LinuxBoot: Equatable, Sendable {
    public var header: BzImageHeader
    public var entry: GuestAddress
    public var bootParams: GuestAddress
    public var initrd: (address: GuestAddress, size: Int)?
    public var e820: [E820Entry]
    /// The initrd's copy when it was deferred: the VMM completes it once the vCPUs run.
    public var pendingCopies: [PendingCopy] = []

    public static func == (lhs: LinuxBoot, rhs: LinuxBoot) -> Bool {
        lhs.header == rhs.header && lhs.entry == rhs.entry && lhs.bootParams == rhs.bootParams
            && lhs.initrd?.address == rhs.initrd?.address && lhs.initrd?.size == rhs.initrd?.size && lhs.e820 == rhs.e820
    }
}

public struct E820Entry: Equatable, Sendable {
    public var address: UInt64
    public var size: UInt64
    public var type: UInt32
}

/// Loads a bzImage, an optional initrd and a command line into guest memory and writes the zero
/// page, following the 64-bit boot protocol. It sees only `GuestMemory`; CPU state is the VMM's.
public enum LinuxLoader {
    /// Enough of a bzImage's start to hold the boot sector and the setup header.
    static let headerReadSize = 0x1000

    /// Convenience for images already in memory (tests).
    public static func load(kernel: [UInt8], kernelName: String, initrd: [UInt8]?, initrdName: String = "initrd",
                            commandLine: String, acpiRSDP: GuestAddress? = nil,
                            into memory: GuestMemory) throws(BootLoaderError) -> LinuxBoot {
        try load(kernel: InMemoryImage(kernel, name: kernelName), initrd: initrd.map { InMemoryImage($0, name: initrdName) },
                 commandLine: commandLine, acpiRSDP: acpiRSDP, into: memory)
    }

    public static func load(kernel image: any BootImage, initrd: (any BootImage)?, commandLine: String, acpiRSDP: GuestAddress? = nil,
                            into memory: GuestMemory) throws(BootLoaderError) -> LinuxBoot {
        let kernelName = image.name
        let header = try BzImageHeader.parse(try image.read(0..<headerReadSize), fileSize: image.count, name: kernelName)

        // Command line: within the kernel's own limit, and NUL-terminated.
        let cmdline = Array(commandLine.utf8)
        let limit = min(Int(header.commandLineSize), LinuxLayout.commandLineCapacity - 1)
        guard cmdline.count <= limit else {
            throw .commandLineTooLong(length: cmdline.count, maximum: limit)
        }

        // The kernel: everything after the setup sectors, at 1 MiB; it needs init_size bytes there.
        let payloadCount = image.count - header.setupBytes
        let kernelEnd = LinuxLayout.kernel.value + UInt64(max(payloadCount, Int(header.initSize)))
        let ramEnd = memory.regions.first(where: { $0.start <= LinuxLayout.kernel && LinuxLayout.kernel.value < $0.end })?.end ?? 0
        guard kernelEnd <= ramEnd else {
            throw .kernelTooLarge(image: kernelName, needed: kernelEnd, memoryEnd: ramEnd)
        }
        // The kernel runs at once: copied now.
        _ = try image.place(from: header.setupBytes, into: memory, at: LinuxLayout.kernel, deferrable: false)
        var pendingCopies: [PendingCopy] = []

        // The initrd: page-aligned, as high as RAM and initrd_addr_max allow, above the kernel.
        var initrdPlacement: (address: GuestAddress, size: Int)?
        if let initrd {
            let ceiling = min(ramEnd, UInt64(header.initrdAddressMax) + 1)
            let size = UInt64(initrd.count)
            guard size <= ceiling, (ceiling - size) & ~0xfff >= kernelEnd else {
                let room = ceiling > kernelEnd ? ceiling - kernelEnd : 0
                throw .initrdTooLarge(image: initrd.name, size: initrd.count, room: Int(room),
                                      ceiling: ceiling, initrdAddressMax: header.initrdAddressMax)
            }
            let address = GuestAddress((ceiling - size) & ~0xfff)
            if let pending = try initrd.place(from: 0, into: memory, at: address, deferrable: true) { pendingCopies.append(pending) }
            initrdPlacement = (address, initrd.count)
        }

        let e820 = memoryMap(memory)
        let params = bootParams(header: header, commandLine: LinuxLayout.commandLine, initrd: initrdPlacement, e820: e820,
                                acpiRSDP: acpiRSDP)
        do {
            try memory.write(cmdline + [0], at: LinuxLayout.commandLine)
            try memory.write(params, at: LinuxLayout.bootParams)
        } catch {
            throw .kernelTooLarge(image: kernelName, needed: LinuxLayout.commandLine.value + UInt64(cmdline.count + 1), memoryEnd: ramEnd)
        }
        return LinuxBoot(header: header, entry: LinuxLayout.kernel + LinuxLayout.entry64Offset,
                         bootParams: LinuxLayout.bootParams, initrd: initrdPlacement, e820: e820, pendingCopies: pendingCopies)
    }

    /// The e820 map for the RAM actually given: low RAM below the EBDA, the legacy hole reserved
    /// up to 1 MiB, then every region as usable RAM.
    public static func memoryMap(_ memory: GuestMemory) -> [E820Entry] {
        var entries: [E820Entry] = []
        for region in memory.regions {
            if region.start.value == 0 {
                entries.append(E820Entry(address: 0, size: min(UInt64(region.size), LinuxLayout.lowRAMEnd), type: LinuxLayout.e820RAM))
                if UInt64(region.size) > LinuxLayout.kernel.value {
                    entries.append(E820Entry(address: LinuxLayout.lowRAMEnd, size: LinuxLayout.kernel.value - LinuxLayout.lowRAMEnd,
                                             type: LinuxLayout.e820Reserved))
                    entries.append(E820Entry(address: LinuxLayout.kernel.value, size: UInt64(region.size) - LinuxLayout.kernel.value,
                                             type: LinuxLayout.e820RAM))
                }
            } else {
                entries.append(E820Entry(address: region.start.value, size: UInt64(region.size), type: LinuxLayout.e820RAM))
            }
        }
        return entries
    }

    /// The zero page: the kernel's own setup header with the loader's fields filled in, and the e820 map.
    public static func bootParams(header: BzImageHeader, commandLine: GuestAddress,
                                  initrd: (address: GuestAddress, size: Int)?, e820: [E820Entry],
                                  acpiRSDP: GuestAddress? = nil) -> [UInt8] {
        var page = [UInt8](repeating: 0, count: BootParamsOffset.size)
        page.replaceSubrange(BzImageHeader.Offset.setupSects..<(BzImageHeader.Offset.setupSects + header.bytes.count), with: header.bytes)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            for index in 0..<MemoryLayout<T>.size { page[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
        }
        typealias H = BzImageHeader.Offset
        put(LinuxLayout.loaderType, at: H.typeOfLoader)
        put(header.loadFlags | BzImageHeader.canUseHeap, at: H.loadFlags)
        // The heap ends 0x200 bytes below the zero page's own copy of the setup code; with a 64-bit
        // entry the setup code never runs, but the field must be sane.
        put(UInt16(0xfe00), at: H.heapEndPtr)
        put(UInt32(truncatingIfNeeded: commandLine.value), at: H.cmdLinePtr)
        put(UInt32(truncatingIfNeeded: commandLine.value >> 32), at: BootParamsOffset.extCmdLinePtr)
        if let initrd {
            put(UInt32(truncatingIfNeeded: initrd.address.value), at: H.ramdiskImage)
            put(UInt32(truncatingIfNeeded: UInt64(initrd.size)), at: H.ramdiskSize)
            put(UInt32(truncatingIfNeeded: initrd.address.value >> 32), at: BootParamsOffset.extRamdiskImage)
            put(UInt32(truncatingIfNeeded: UInt64(initrd.size) >> 32), at: BootParamsOffset.extRamdiskSize)
        }
        if let acpiRSDP { put(acpiRSDP.value, at: BootParamsOffset.acpiRSDPAddress) }
        let count = min(e820.count, BootParamsOffset.e820MaxEntries)
        put(UInt8(count), at: BootParamsOffset.e820Entries)
        for (index, entry) in e820.prefix(count).enumerated() {
            let base = BootParamsOffset.e820Table + index * 20
            put(entry.address, at: base)
            put(entry.size, at: base + 8)
            put(entry.type, at: base + 16)
        }
        return page
    }
}
