import GuestMemory

/// Why an image could not be loaded, naming the image and the numbers involved.
public enum BootLoaderError: Error, CustomStringConvertible, Equatable {
    case empty(image: String)
    case tooLarge(image: String, size: Int, available: Int, loadAddress: GuestAddress)
    /// Larger than the addresses its CPU mode reaches (real mode: below 0xa0000), whatever the RAM.
    case beyondModeLimit(image: String, size: Int, available: Int, loadAddress: GuestAddress, limit: UInt64)
    case notBzImage(image: String, reason: String)
    case protocolTooOld(image: String, version: String)
    case not64Bit(image: String)
    case commandLineTooLong(length: Int, maximum: Int)
    case kernelTooLarge(image: String, needed: UInt64, memoryEnd: UInt64)
    case initrdTooLarge(image: String, size: Int, room: Int, ceiling: UInt64, initrdAddressMax: UInt32)
    /// The image could not be opened or read; `reason` is the whole message.
    case unreadable(image: String, reason: String)

    public var description: String {
        switch self {
        case .empty(let image):
            return "guest image \(image) is empty"
        case .tooLarge(let image, let size, let available, let loadAddress):
            return "guest image \(image) is \(size) bytes, but only \(available) bytes of guest memory lie above its "
                + "load address \(loadAddress): raise --memory or shrink the image"
        case .beyondModeLimit(let image, let size, let available, let loadAddress, let limit):
            return "guest image \(image) is \(size) bytes, but a real-mode guest loaded at \(loadAddress) reaches only up to "
                + "0x\(String(limit, radix: 16)) (the legacy video hole): \(available) bytes; more --memory cannot help: shrink the image or build it for long mode"
        case .notBzImage(let image, let reason):
            return "kernel \(image) is not a bzImage: \(reason)"
        case .protocolTooOld(let image, let version):
            return "kernel \(image) speaks boot protocol \(version); Tandem needs 2.12 or later (Linux 3.8+) for the 64-bit entry"
        case .not64Bit(let image):
            return "kernel \(image) has no 64-bit entry point (XLF_KERNEL_64 is not set): build it for x86_64"
        case .unreadable(_, let reason):
            return reason
        case .commandLineTooLong(let length, let maximum):
            return "kernel command line is \(length) bytes; this kernel accepts at most \(maximum)"
        case .kernelTooLarge(let image, let needed, let memoryEnd):
            return "kernel \(image) needs guest memory up to 0x\(String(needed, radix: 16)) to start, but RAM ends at "
                + "0x\(String(memoryEnd, radix: 16)): raise --memory"
        case .initrdTooLarge(let image, let size, let room, let ceiling, let initrdAddressMax):
            return "initrd \(image) is \(size) bytes, but only \(room) bytes fit between the kernel and 0x\(String(ceiling, radix: 16)) "
                + "(the end of RAM or the kernel's initrd_addr_max 0x\(String(initrdAddressMax, radix: 16))): raise --memory"
        }
    }
}

/// Loads a flat binary (raw machine code, no headers) at a fixed guest-physical address, as
/// kvmtool does for its bare test guests. `limit` caps where the image may end (real mode cannot
/// reach past 0xa0000), in addition to the end of RAM.
public enum FlatBinaryLoader {
    public static func load(_ image: [UInt8], named name: String, into memory: GuestMemory,
                            at address: GuestAddress, limit: UInt64 = .max) throws(BootLoaderError) {
        guard !image.isEmpty else { throw .empty(image: name) }
        let ramEnd = memory.regions.first(where: { $0.start <= address && address.value < $0.end })?.end ?? address.value
        let end = min(ramEnd, limit)
        let available = end > address.value ? Int(end - address.value) : 0
        guard image.count <= available else {
            if limit < ramEnd { throw .beyondModeLimit(image: name, size: image.count, available: available, loadAddress: address, limit: limit) }
            throw .tooLarge(image: name, size: image.count, available: available, loadAddress: address)
        }
        do { try memory.write(image, at: address) } catch {
            throw .tooLarge(image: name, size: image.count, available: available, loadAddress: address)
        }
    }
}
