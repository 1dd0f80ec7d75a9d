import BootLoader
import GuestMemory
import Testing

@Suite("Flat binary loader")
struct LoaderTests {
    @Test("loads at the address and refuses empty or oversized images, naming them")
    func load() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 1 << 20)])
        try FlatBinaryLoader.load([0xf4], named: "hlt.bin", into: memory, at: GuestAddress(0x10000))
        #expect(try memory.read(1, at: GuestAddress(0x10000)) == [0xf4])
        #expect(throws: BootLoaderError.empty(image: "e.bin")) {
            try FlatBinaryLoader.load([], named: "e.bin", into: memory, at: GuestAddress(0x10000))
        }
        let big = [UInt8](repeating: 0x90, count: (1 << 20) - 0x10000 + 1)
        #expect(throws: BootLoaderError.tooLarge(image: "big.bin", size: big.count, available: big.count - 1,
                                                 loadAddress: GuestAddress(0x10000))) {
            try FlatBinaryLoader.load(big, named: "big.bin", into: memory, at: GuestAddress(0x10000))
        }
        let error = BootLoaderError.tooLarge(image: "big.bin", size: 10, available: 5, loadAddress: GuestAddress(0x10000))
        #expect(error.description.contains("raise --memory"))
    }

    @Test("a limit (real mode's 0xa0000) caps the image below the end of RAM")
    func limit() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 2 << 20)])
        let image = [UInt8](repeating: 0x90, count: 0xa0000 - 0x10000 + 1)
        #expect {
            try FlatBinaryLoader.load(image, named: "r.bin", into: memory, at: GuestAddress(0x10000), limit: 0xa0000)
        } throws: { error in
            // The mode's limit, not RAM: more --memory cannot help, and the message must not say it would.
            let text = "\(error)"
            return text.contains("reaches only up to 0xa0000") && text.contains("more --memory cannot help") && !text.contains("raise --memory")
        }
        try FlatBinaryLoader.load(Array(image.dropLast()), named: "r.bin", into: memory, at: GuestAddress(0x10000), limit: 0xa0000)
    }
}
