// libFuzzer target for the virtio-mmio transport, the split-virtqueue walker, virtio-blk,
// virtio-net and virtio-vsock: the guest is hostile, and everything here is what it controls.
// Byte 1's low bit picks virtio-net (its "tap" a datagram socket pair, a frame waiting to be
// received; queue 1, transmit, at 0x4000/0x5000/0x6000), else its bit 1 virtio-vsock (a host
// program connected to its socket with `CONNECT 5`, a listener for the guest's connections to host
// port 1024; queue 1 as net's), else virtio-blk. The input's first bytes become the
// start of guest RAM (descriptor table at 0x1000, available ring at 0x2000, used ring at 0x3000,
// request headers and data after); byte 0 picks the queue size the driver asks for; the rest are
// register writes (offset, value), between a normal initialisation and a final notification.
// Nothing may crash or hang, and while the device works every chain it took goes back used.
// Built by `make fuzz` against the Virtio module compiled with -sanitize=fuzzer.
import Devices
import Glibc
import GuestMemory
import HostOS
import Virtio

nonisolated(unsafe) var memory: GuestMemory?
nonisolated(unsafe) var diskPath = ""
/// The "tap" of the virtio-net case: the device's end and the host's.
nonisolated(unsafe) var tapPair: [Int32] = [-1, -1]
/// Where the vsock case's guest connections to host port 1024 go.
nonisolated(unsafe) var listener: Int32 = -1

func unixAddress(_ path: String) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { buffer in for (index, byte) in path.utf8.enumerated() { buffer[index] = byte } }
    return address
}
func bindUnix(_ fd: Int32, _ path: String) {
    var address = unixAddress(path)
    unlink(path)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
}
func connectUnix(_ fd: Int32, _ path: String) {
    var address = unixAddress(path)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
}

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
        _ = socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &tapPair)
    }
    let memory = memory!
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let image = Array(bytes.prefix(1 << 15))
    try! memory.write([UInt8](repeating: 0, count: 1 << 16), at: GuestAddress(0))
    try! memory.write(image, at: GuestAddress(0))
    let net = size > 1 && bytes[1] & 1 == 1
    let vsock = !net && size > 1 && bytes[1] & 2 == 2
    let device: VirtioDevice
    var host: Int32 = -1
    if vsock {
        let path = "/tmp/tandem-fuzz-virtio-\(getpid()).sock"
        if listener < 0 {
            listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            bindUnix(listener, path + "_1024")
            listen(listener, 64)
            atexit { unlink("/tmp/tandem-fuzz-virtio-\(getpid()).sock_1024") }
        }
        let made = try! VirtioVsock(path: path)
        host = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        connectUnix(host, path)
        _ = "CONNECT 5\n".withCString { send(host, $0, 10, 0) }
        device = made
    } else if net {
        // The device's end is shared across inputs: a FileDescriptor that never closes it.
        let tap = VirtioNet(tap: FileDescriptor(adopting: dup(tapPair[0]), label: "fuzz tap"), interfaceName: "fuzz", mac: [2, 0, 0, 0, 0, 1])
        let frame = [UInt8](repeating: 0, count: 12) + Array(bytes.suffix(min(size, 1514)))
        _ = frame.withUnsafeBytes { send(tapPair[1], $0.baseAddress, $0.count, 0) }
        device = tap
    } else {
        device = try! VirtioBlock(path: diskPath, readOnly: bytes[0] & 0x80 != 0)
    }
    let transport = MMIOTransport(device: device, memory: memory, interrupt: DisconnectedInterruptTrigger())
    (device as? VirtioNet)?.transport = transport
    (device as? VirtioVsock)?.transport = transport
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
    if net || vsock {
        for (offset, value) in [(0x030, 1), (0x038, Int(bytes[0] & 0x3f) + 1), (0x080, 0x4000), (0x090, 0x5000), (0x0a0, 0x6000), (0x044, 1)] {
            set(offset, UInt32(value))
        }
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
    if let vsock = device as? VirtioVsock {
        vsock.process()
        set(0x050, 1)
        vsock.process()
        set(0x050, 0)
        vsock.close()
        close(host)
        // Take and drop what the guest's connections to port 1024 made.
        while true {
            let accepted = accept(listener, nil, nil)
            if accepted < 0 { break }
            close(accepted)
        }
    }
    if net {
        set(0x050, 1)
        // Drain what reached the "tap", and what the device left waiting, for the next input.
        var sink = [UInt8](repeating: 0, count: 70000)
        while sink.withUnsafeMutableBytes({ recv(tapPair[1], $0.baseAddress, $0.count, 0) }) > 0 {}
        while sink.withUnsafeMutableBytes({ recv(tapPair[0], $0.baseAddress, $0.count, 0) }) > 0 {}
    }
    // Every chain the device took went back to the driver (the used ring's contents are the
    // guest's to overwrite, even through the device's own writes for it: not checked).
    if transport.status & MMIOTransport.Status.needsReset == 0 {
        for queue in transport.queues {
            precondition(queue.nextUsed == queue.nextAvailable, "took \(queue.nextAvailable) chains, returned \(queue.nextUsed)")
        }
    }
    return 0
}
