import Devices
import Foundation
import GuestMemory
import HostOS
import Testing
@testable import Virtio

/// A virtio-net driver from the spec's side, both queues set up, and the other end of the "tap":
/// a datagram socket pair keeps each frame whole, as a tap does.
final class NetDriver: @unchecked Sendable {
    /// Queue q's descriptor table, available ring and used ring at base(q) + 0, 0x1000, 0x2000.
    static func base(_ queue: Int) -> UInt64 { 0x10000 * UInt64(queue + 1) }
    let memory: GuestMemory
    let transport: MMIOTransport
    let net: VirtioNet
    let line = CountingTrigger()
    /// The host's end of the "tap".
    let host: Int32
    var nextAvailable: [UInt16] = [0, 0]
    static let mac: [UInt8] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55]

    init() throws {
        memory = try GuestMemory(ranges: [(GuestAddress(0), 4 << 20)])
        var pair: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0)
        host = pair[1]
        net = VirtioNet(tap: FileDescriptor(adopting: pair[0], label: "test tap"), interfaceName: "test0", mac: Self.mac)
        transport = MMIOTransport(device: net, memory: memory, interrupt: line)
        net.transport = transport
    }
    deinit { close(host) }

    func register(_ offset: Int) -> UInt32 { transport.register(offset) }
    func set(_ offset: Int, _ value: UInt32) { transport.set(offset, value) }
    var needsReset: Bool { register(0x070) & MMIOTransport.Status.needsReset != 0 }

    func start(features: UInt64 = MMIOTransport.featureVersion1 | VirtioNet.featureMAC) {
        set(0x070, 0); set(0x070, 1); set(0x070, 3)
        set(0x024, 0); set(0x020, UInt32(truncatingIfNeeded: features))
        set(0x024, 1); set(0x020, UInt32(truncatingIfNeeded: features >> 32))
        set(0x070, 11)
        for queue in 0..<2 {
            let base = Self.base(queue)
            set(0x030, UInt32(queue)); set(0x038, 16)
            set(0x080, UInt32(base)); set(0x084, 0)
            set(0x090, UInt32(base + 0x1000)); set(0x094, 0)
            set(0x0a0, UInt32(base + 0x2000)); set(0x0a4, 0)
            set(0x044, 1)
        }
        set(0x070, 15)
    }

    /// A chain of `buffers` (address, length, writable) on `queue` from descriptor 0, made
    /// available; notified unless `notify` is false.
    func post(queue: Int, _ buffers: [(UInt64, UInt32, Bool)], notify: Bool = true) throws {
        let base = Self.base(queue)
        for (index, (address, length, writable)) in buffers.enumerated() {
            let entry = GuestAddress(base + 16 * UInt64(index))
            let last = index == buffers.count - 1
            try memory.write(address, at: entry)
            try memory.write(length, at: entry + 8)
            try memory.write(UInt16((last ? 0 : 1) | (writable ? 2 : 0)), at: entry + 12)
            try memory.write(UInt16(last ? 0 : index + 1), at: entry + 14)
        }
        try memory.write(UInt16(0), at: GuestAddress(base + 0x1000 + 4 + 2 * UInt64(nextAvailable[queue] % 16)))
        nextAvailable[queue] &+= 1
        try memory.write(nextAvailable[queue], at: GuestAddress(base + 0x1000 + 2))
        if notify { set(0x050, UInt32(queue)) }
    }

    func used(_ queue: Int) throws -> (index: UInt16, length: UInt32) {
        let ring = Self.base(queue) + 0x2000
        let index = try memory.read(UInt16.self, at: GuestAddress(ring + 2))
        let length = index == 0 ? 0 : try memory.read(UInt32.self, at: GuestAddress(ring + 8 + 8 * UInt64((index - 1) % 16)))
        return (index, length)
    }

    /// What the host end received (one frame), or nil.
    func hostReceive() -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: 70000)
        let count = bytes.withUnsafeMutableBytes { recv(host, $0.baseAddress, $0.count, 0) }
        return count < 0 ? nil : Array(bytes[..<count])
    }
}

@Suite("virtio-net on a tap, driven as a guest driver would (a datagram socket as the tap; no KVM)")
struct VirtioNetTests {
    static func frame(_ size: Int, seed: UInt8) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: VirtioNet.headerSize)
        header[0] = 1  // NEEDS_CSUM, as a driver with CSUM writes it: passed through untouched
        return header + (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    @Test("the MAC in the config space; network device 1; checksum and TSO offloads offered")
    func registers() throws {
        let driver = try NetDriver()
        #expect(driver.register(0x008) == 1)
        var mac: [UInt8] = []
        for offset in 0..<6 {
            var byte: UInt8 = 0
            withUnsafeMutableBytes(of: &byte) { driver.transport.read(offset: UInt64(0x100 + offset), into: $0) }
            mac.append(byte)
        }
        #expect(mac == NetDriver.mac)
        let features = UInt64(driver.register(0x010))
        for bit in [VirtioNet.featureMAC, VirtioNet.featureCSUM, VirtioNet.featureGuestCSUM, VirtioNet.featureHostTSO4, VirtioNet.featureGuestTSO4] {
            #expect(features & bit != 0, "feature \(bit) offered")
        }
    }

    @Test("transmit: a frame over two buffers reaches the tap whole, header included, and the chain comes back used")
    func transmit() throws {
        let driver = try NetDriver()
        driver.start()
        let frame = Self.frame(1000, seed: 7)
        try driver.memory.write(frame, at: GuestAddress(0x100000))
        try driver.post(queue: 1, [(0x100000, 20, false), (0x100000 + 20, UInt32(frame.count - 20), false)])
        #expect(driver.hostReceive() == frame)
        let used = try driver.used(1).index
        #expect(used == 1 && driver.line.count == 1 && !driver.needsReset)
        #expect(driver.net.framesSent == 1)
    }

    @Test("receive: a frame that arrives before any buffer waits (the tap unwatched), then lands in the next buffer with num_buffers 1")
    func receive() throws {
        let driver = try NetDriver()
        driver.start()
        var frame = Self.frame(600, seed: 3)
        _ = frame.withUnsafeBytes { send(driver.host, $0.baseAddress, $0.count, 0) }
        driver.net.receive()  // the device thread saw the tap readable: no buffer yet
        let before = try driver.used(0).index
        #expect(!driver.net.wantsFrames && before == 0, "the frame waits and the tap is not watched")
        try driver.post(queue: 0, [(0x200000, 2048, true)])  // the notification delivers it
        let used = try driver.used(0)
        frame[10] = 1  // num_buffers
        let landed = try driver.memory.read(frame.count, at: GuestAddress(0x200000)) == frame
        #expect(used.index == 1 && used.length == UInt32(frame.count) && landed, "\(used)")
        #expect(driver.net.wantsFrames && driver.line.count == 1 && driver.net.framesReceived == 1)
        // Two more frames, one buffer: one lands, one waits.
        for seed: UInt8 in [4, 5] { _ = Self.frame(100, seed: seed).withUnsafeBytes { send(driver.host, $0.baseAddress, $0.count, 0) } }
        try driver.post(queue: 0, [(0x210000, 2048, true)])
        let after = try driver.used(0).index
        #expect(after == 2 && !driver.net.wantsFrames)
    }

    @Test("a receive buffer too small for the frame comes back empty and the frame is counted dropped; a transmit chain without a header needs a reset")
    func hostile() throws {
        let driver = try NetDriver()
        driver.start()
        _ = Self.frame(600, seed: 1).withUnsafeBytes { send(driver.host, $0.baseAddress, $0.count, 0) }
        try driver.post(queue: 0, [(0x200000, 64, true)])
        let empty = try driver.used(0)
        #expect(empty == (1, 0) && driver.net.framesDropped == 1 && !driver.needsReset)
        try driver.post(queue: 1, [(0x100000, 8, false)])
        #expect(driver.needsReset && driver.transport.failure?.contains("shorter than the 12-byte header") == true)
        #expect(driver.hostReceive() == nil, "nothing reached the tap")
    }
}
