import GuestMemory

/// Why an image could not be loaded, naming the image and the numbers involved.
public enum BootLoaderError: Error, CustomStringConvertible, Equatable {
    case empty(image: String)
    case tooLarge(image: String, size: Int, available: Int, loadAddress: GuestAddress)

    public var description: String {
        switch self {
        case .empty(let image):
            return "guest image \(image) is empty"
        case .tooLarge(let image, let size, let available, let loadAddress):
            return "guest image \(image) is \(size) bytes, but only \(available) bytes of guest memory lie above its "
                + "load address \(loadAddress): raise --memory or shrink the image"
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
            throw .tooLarge(image: name, size: image.count, available: available, loadAddress: address)
        }
        do { try memory.write(image, at: address) } catch {
            throw .tooLarge(image: name, size: image.count, available: available, loadAddress: address)
        }
    }
}
