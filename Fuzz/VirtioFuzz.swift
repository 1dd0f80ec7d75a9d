// libFuzzer target for the virtio-mmio transport, the split-virtqueue walker and virtio-blk: the
// guest is hostile, and everything here is what it controls. The input's first bytes become the
// start of guest RAM (descriptor table at 0x1000, available ring at 0x2000, used ring at 0x3000,
// request headers and data after); byte 0 picks the queue size the driver asks for; the rest are
// register writes (offset, value), between a normal initialisation and a final notification.
// Nothing may crash or hang, and while the device works every chain it took goes back used.
// Built by `make fuzz` against the Virtio module compiled with -sanitize=fuzzer.
import Devices
import Glibc
import GuestMemory
import Virtio

nonisolated(unsafe) var memory: GuestMemory?
nonisolated(unsafe) var diskPath = ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVirtio(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 1 else { return 0 }
    if memory == nil {
        memory = try! GuestMemory(ranges: [(GuestAddress(0), 1 << 16)])
        diskPath = "/tmp/tandem-fuzz-virtio-\(getpid()).img"
        let fd = open(diskPath, O_RDWR | O_CREAT | O_TRUNC, 0o600)
        ftruncate(fd, 64 * 512)
        close(fd)
        atexit { unlink(diskPath) }
    }
    let memory = memory!
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let image = Array(bytes.prefix(1 << 15))
    try! memory.write([UInt8](repeating: 0, count: 1 << 16), at: GuestAddress(0))
    try! memory.write(image, at: GuestAddress(0))
    let disk = try! VirtioBlock(path: diskPath, readOnly: bytes[0] & 0x80 != 0)
    let transport = MMIOTransport(device: disk, memory: memory, interrupt: DisconnectedInterruptTrigger())
    func set(_ offset: Int, _ value: UInt32) {
        var value = value
        withUnsafeBytes(of: &value) { transport.write(offset: UInt64(offset), from: $0) }
    }
    // A driver's initialisation (3.1.1), queue 0 at the fixed rings, of the size byte 0 asks for.
    // Byte 0's bit 6 asks for indirect descriptors (bit 7: a read-only disk), so the fuzzer walks indirect tables too.
    for (offset, value) in [(0x070, 1), (0x070, 3), (0x024, 0), (0x020, bytes[0] & 0x40 != 0 ? 1 << 28 : 0), (0x024, 1), (0x020, 1), (0x070, 11), (0x030, 0),
                            (0x038, Int(bytes[0] & 0x3f) + 1), (0x080, 0x1000), (0x090, 0x2000), (0x0a0, 0x3000), (0x044, 1), (0x070, 15)] {
        set(offset, UInt32(value))
    }
    // The input's register writes: 6 bytes each, after the memory image.
    var index = min(size, 1 << 15)
    while index + 6 <= size {
        let offset = (Int(bytes[index]) | Int(bytes[index + 1]) << 8) % 0x110 & ~3
        let value = UInt32(bytes[index + 2]) | UInt32(bytes[index + 3]) << 8 | UInt32(bytes[index + 4]) << 16 | UInt32(bytes[index + 5]) << 24
        set(offset, value)
        index += 6
    }
    set(0x050, 0)
    // Every chain the device took went back to the driver (the used ring's contents are the
    // guest's to overwrite, even through the device's own writes for it: not checked).
    if transport.status & MMIOTransport.Status.needsReset == 0, let queue = transport.queues.first {
        precondition(queue.nextUsed == queue.nextAvailable, "took \(queue.nextAvailable) chains, returned \(queue.nextUsed)")
    }
    return 0
}
