import Devices
import Foundation
import GuestMemory
import HostOS
import Testing
@testable import Virtio

/// A virtio-vsock driver from the spec's side (as Linux 6.1's: a receive buffer is a 44-byte
/// header descriptor and a 4 KiB payload descriptor, a packet a header and a payload descriptor),
/// with real Unix sockets on the host side. No KVM: the test plays the guest, and calls
/// `process()` where the device thread would (a Unix socket's peer is ready as soon as the
/// write returns).
final class VsockDriver: @unchecked Sendable {
    static let queueSize: UInt16 = 64
    /// Queue q's descriptor table, available ring and used ring at base(q) + 0, 0x1000, 0x2000.
    static func base(_ queue: Int) -> UInt64 { 0x10000 * UInt64(queue + 1) }
    let memory: GuestMemory
    let transport: MMIOTransport
    let vsock: VirtioVsock
    let line = CountingTrigger()
    let path: String
    let directory: String
    var nextAvailable: [UInt16] = [0, 0, 0]
    var nextDescriptor: [UInt16] = [0, 0, 0]
    var lastUsed: [UInt16] = [0, 0, 0]
    /// Receive chains by head: where their header and payload are.
    var receiveBuffers: [UInt16: (header: UInt64, payload: UInt64)] = [:]
    var nextBuffer: UInt64 = 0x100000

    init() throws {
        directory = NSTemporaryDirectory() + "tandem-vsock-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/v.sock"
        memory = try GuestMemory(ranges: [(GuestAddress(0), 16 << 20)])
        vsock = try VirtioVsock(path: path)
        transport = MMIOTransport(device: vsock, memory: memory, interrupt: line)
        vsock.transport = transport
    }
    deinit {
        vsock.close()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func set(_ offset: Int, _ value: UInt32) { transport.set(offset, value) }
    var needsReset: Bool { transport.register(0x070) & MMIOTransport.Status.needsReset != 0 }

    func start() {
        set(0x070, 0); set(0x070, 1); set(0x070, 3)
        set(0x024, 0); set(0x020, 0)
        set(0x024, 1); set(0x020, 1)  // VERSION_1
        set(0x070, 11)
        for queue in 0..<3 {
            let base = Self.base(queue)
            set(0x030, UInt32(queue)); set(0x038, UInt32(Self.queueSize))
            set(0x080, UInt32(base)); set(0x084, 0)
            set(0x090, UInt32(base + 0x1000)); set(0x094, 0)
            set(0x0a0, UInt32(base + 0x2000)); set(0x0a4, 0)
            set(0x044, 1)
        }
        set(0x070, 15)
    }

    /// A chain of `buffers` on `queue`, made available (and notified unless `notify` is false).
    @discardableResult
    func post(queue: Int, _ buffers: [(UInt64, UInt32, Bool)], notify: Bool = true) throws -> UInt16 {
        let base = Self.base(queue)
        let head = nextDescriptor[queue]
        for (index, (address, length, writable)) in buffers.enumerated() {
            let descriptor = (head &+ UInt16(index)) % Self.queueSize
            let entry = GuestAddress(base + 16 * UInt64(descriptor))
            let last = index == buffers.count - 1
            try memory.write(address, at: entry)
            try memory.write(length, at: entry + 8)
            try memory.write(UInt16((last ? 0 : 1) | (writable ? 2 : 0)), at: entry + 12)
            try memory.write(UInt16((descriptor + 1) % Self.queueSize), at: entry + 14)
        }
        nextDescriptor[queue] = (head &+ UInt16(buffers.count)) % Self.queueSize
        try memory.write(head, at: GuestAddress(base + 0x1000 + 4 + 2 * UInt64(nextAvailable[queue] % Self.queueSize)))
        nextAvailable[queue] &+= 1
        try memory.write(nextAvailable[queue], at: GuestAddress(base + 0x1000 + 2))
        if notify { set(0x050, UInt32(queue)) }
        return head
    }

    /// `count` receive buffers (header + 4 KiB), notified once.
    func postReceive(_ count: Int, payload: UInt32 = 4096) throws {
        for index in 0..<count {
            let header = nextBuffer, data = nextBuffer + 0x100
            nextBuffer += 0x2000
            if nextBuffer >= 0x800000 { nextBuffer = 0x100000 }
            let head = try post(queue: 0, [(header, UInt32(VsockHeader.size), true), (data, payload, true)], notify: index == count - 1)
            receiveBuffers[head] = (header, data)
        }
    }

    /// Sends a packet (header and payload in two descriptors, as Linux does).
    var nextTransmit: UInt64 = 0x800000
    func send(_ header: VsockHeader, _ payload: [UInt8] = [], notify: Bool = true) throws {
        let at = nextTransmit
        nextTransmit += 0x20000
        if nextTransmit >= 0xf00000 { nextTransmit = 0x800000 }
        try memory.write(header.bytes, at: GuestAddress(at))
        var buffers: [(UInt64, UInt32, Bool)] = [(at, UInt32(VsockHeader.size), false)]
        if !payload.isEmpty {
            try memory.write(payload, at: GuestAddress(at + 0x100))
            buffers.append((at + 0x100, UInt32(payload.count), false))
        }
        try post(queue: 1, buffers, notify: notify)
    }

    /// A packet from the guest to the host, on connection (guest port `port`, host port `hostPort`).
    func packet(_ op: UInt16, port: UInt32, hostPort: UInt32, length: UInt32 = 0, flags: UInt32 = 0,
                bufferAllocation: UInt32 = 256 << 10, forwardCount: UInt32 = 0) -> VsockHeader {
        VsockHeader(sourceCID: 3, destinationCID: 2, sourcePort: port, destinationPort: hostPort, length: length, op: op, flags: flags,
                    bufferAllocation: bufferAllocation, forwardCount: forwardCount)
    }

    /// The packets the device put on the receive queue since the last call, with their payloads.
    func received() throws -> [(header: VsockHeader, payload: [UInt8])] {
        let ring = Self.base(0) + 0x2000
        let index = try memory.read(UInt16.self, at: GuestAddress(ring + 2))
        var packets: [(VsockHeader, [UInt8])] = []
        while lastUsed[0] != index {
            let slot = UInt64(lastUsed[0] % Self.queueSize)
            let head = UInt16(try memory.read(UInt32.self, at: GuestAddress(ring + 4 + 8 * slot)))
            let length = try memory.read(UInt32.self, at: GuestAddress(ring + 8 + 8 * slot))
            let posted = receiveBuffers.removeValue(forKey: head)
            let buffer = try #require(posted, "a used receive chain the driver did not post: \(head)")
            let header = VsockHeader(try memory.read(VsockHeader.size, at: GuestAddress(buffer.header)))
            #expect(Int(length) == VsockHeader.size + Int(header.length), "the used length is the header and the payload")
            packets.append((header, try memory.read(Int(header.length), at: GuestAddress(buffer.payload))))
            lastUsed[0] &+= 1
        }
        return packets
    }

    /// How many transmit packets the device took so far.
    var transmitUsed: UInt16 { (try? memory.read(UInt16.self, at: GuestAddress(Self.base(1) + 0x2000 + 2))) ?? 0 }
}

/// A host program's Unix socket (blocking, with a receive timeout so a test cannot hang).
final class HostSocket {
    let fd: Int32
    init(connectingTo path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(result == 0, "connect \(path): errno \(errno)")
        setTimeout()
    }
    init(adopting fd: Int32) {
        self.fd = fd
        setTimeout()
    }
    private func setTimeout() {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }
    deinit { close(fd) }

    func write(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
    func write(_ text: String) { write(Array(text.utf8)) }
    /// Up to `count` bytes (what one read returns); [] at end of file, nil on timeout or error.
    func read(_ count: Int = 65536) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        let got = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        return got < 0 ? nil : Array(buffer[..<got])
    }
    /// Exactly `count` bytes, or what came before end of file or a timeout.
    func read(exactly count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count, let chunk = read(count - bytes.count), !chunk.isEmpty { bytes += chunk }
        return bytes
    }
}

/// A Unix socket listening where the guest's connections to a host port go (`PATH_PORT`).
final class HostListener {
    let fd: Int32
    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0 && listen(fd, 8) == 0, "listen at \(path): errno \(errno)")
    }
    deinit { close(fd) }
    func accept() -> HostSocket? {
        let connection = Glibc.accept(fd, nil, nil)
        return connection < 0 ? nil : HostSocket(adopting: connection)
    }
}

@Suite("virtio-vsock on Unix sockets (Firecracker's model), driven as a guest driver would; no KVM")
struct VirtioVsockTests {
    typealias Op = VsockHeader.Op

    static func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) } }

    /// A host program connects with `CONNECT port` and the guest accepts: the host's socket, the
    /// device's host port.
    static func connectFromHost(_ driver: VsockDriver, port: UInt32) throws -> (HostSocket, UInt32) {
        let host = try HostSocket(connectingTo: driver.path)
        host.write("CONNECT \(port)\n")
        driver.vsock.process()
        let request = try #require(try driver.received().first, "no REQUEST reached the guest")
        #expect(request.header.op == Op.request && request.header.destinationPort == port && request.header.sourceCID == 2
            && request.header.destinationCID == 3 && request.header.sourcePort >= 1 << 30)
        try driver.send(driver.packet(Op.response, port: port, hostPort: request.header.sourcePort))
        #expect(String(decoding: host.read(exactly: "OK \(request.header.sourcePort)\n".utf8.count), as: UTF8.self) == "OK \(request.header.sourcePort)\n")
        return (host, request.header.sourcePort)
    }

    @Test("device 19, three queues, the guest's CID (3) in the configuration space, the socket file made and removed")
    func registers() throws {
        let driver = try VsockDriver()
        #expect(driver.transport.register(0x008) == 19)
        var cid: UInt64 = 0
        withUnsafeMutableBytes(of: &cid) { driver.transport.read(offset: 0x100, into: $0) }
        #expect(cid == 3)
        #expect(Files.kind(driver.path) == .other)
        driver.vsock.close()
        #expect(Files.kind(driver.path) == .missing)
    }

    @Test("after a restore: the transport reset event (id 0) lands in the driver's event buffer with an interrupt; none without a running device or an event buffer; a buffer too short for the event breaks the device")
    func transportReset() throws {
        let driver = try VsockDriver()
        #expect(!driver.vsock.announceTransportReset(), "the device is not running")
        driver.start()
        #expect(!driver.vsock.announceTransportReset(), "no event buffer posted")
        let buffer: UInt64 = 0xf00000
        try driver.memory.write(UInt32(0xdead_beef), at: GuestAddress(buffer))
        let head = try driver.post(queue: 2, [(buffer, 8, true)])
        let before = driver.line.count
        #expect(driver.vsock.announceTransportReset())
        #expect(try driver.memory.read(UInt32.self, at: GuestAddress(buffer)) == 0, "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET")
        let used = VsockDriver.base(2) + 0x2000
        #expect(try driver.memory.read(UInt16.self, at: GuestAddress(used + 2)) == 1)
        #expect(try driver.memory.read(UInt32.self, at: GuestAddress(used + 4)) == UInt32(head))
        #expect(try driver.memory.read(UInt32.self, at: GuestAddress(used + 8)) == 4, "the used length is the event's")
        #expect(driver.line.count == before + 1)
        #expect(!driver.vsock.announceTransportReset(), "its one buffer is used")
        try driver.post(queue: 2, [(buffer, 2, true)])
        #expect(!driver.vsock.announceTransportReset())
        #expect(driver.needsReset, "a 2-byte event buffer breaks the rules")
    }

    @Test("after the reset event nothing reaches the receive queue until the driver posts an event buffer again (it has reset its sockets): a host program connecting at once is not reset with the old connections; the guest's packets are still taken")
    func resetAcknowledged() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(8)
        try driver.post(queue: 2, [(0xf00000, 8, true)])
        #expect(driver.vsock.announceTransportReset())
        let host = try HostSocket(connectingTo: driver.path)
        host.write("CONNECT 1234\n")
        driver.vsock.process()
        #expect(try driver.received().isEmpty, "a REQUEST went to the guest before it acted on the reset")
        // A packet for a connection the device does not know is taken and answered with an RST, later.
        try driver.send(driver.packet(Op.rw, port: 4000, hostPort: 5000, length: 3), [1, 2, 3])
        #expect(try driver.received().isEmpty)
        try driver.post(queue: 2, [(0xf00000, 8, true)])
        let packets = try driver.received()
        #expect(packets.map(\.header.op).sorted() == [Op.request, Op.reset].sorted(), "\(packets.map(\.header.op))")
        #expect(packets.first { $0.header.op == Op.request }?.header.destinationPort == 1234)
        #expect(!driver.needsReset)
    }

    @Test("host to guest: CONNECT reaches a guest port, OK names the host port, bytes flow both ways, the guest's close reaches the host as end of file")
    func hostInitiated() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(16)
        let (host, hostPort) = try Self.connectFromHost(driver, port: 1234)
        let hello = Self.bytes(3000, seed: 1)
        host.write(hello)
        driver.vsock.process()
        let data = try driver.received()
        #expect(data.count == 1 && data.first?.header.op == Op.rw && data.first?.payload == hello)
        #expect(data.first?.header.sourcePort == hostPort && data.first?.header.destinationPort == 1234)
        let reply = Self.bytes(5000, seed: 2)
        try driver.send(driver.packet(Op.rw, port: 1234, hostPort: hostPort, length: UInt32(reply.count)), reply)
        #expect(host.read(exactly: reply.count) == reply)
        try driver.send(driver.packet(Op.shutdown, port: 1234, hostPort: hostPort, flags: VsockHeader.Shutdown.both))
        #expect(host.read() == [], "the host program sees end of file")
        #expect(try driver.received().map(\.header.op) == [Op.reset])
        #expect(driver.vsock.openConnections == 0 && driver.vsock.connectionsOpened == 1 && !driver.needsReset)
    }

    @Test("guest to host: a connection to host port P reaches the Unix socket PATH_P; no listener there is an RST")
    func guestInitiated() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(16)
        let listener = try HostListener(driver.path + "_5000")
        try driver.send(driver.packet(Op.request, port: 40000, hostPort: 5000))
        #expect(try driver.received().map(\.header.op) == [Op.response])
        let host = try #require(listener.accept())
        let payload = Self.bytes(60000, seed: 3)
        try driver.send(driver.packet(Op.rw, port: 40000, hostPort: 5000, length: UInt32(payload.count)), payload)
        #expect(host.read(exactly: payload.count) == payload)
        // The host program closes its side: the guest is told the host sends no more.
        shutdown(host.fd, Int32(SHUT_WR))
        driver.vsock.process()
        let shut = try driver.received()
        #expect(shut.map(\.header.op) == [Op.shutdown] && shut.first?.header.flags == VsockHeader.Shutdown.send)
        try driver.send(driver.packet(Op.request, port: 40001, hostPort: 5001))
        let refused = try driver.received()
        #expect(refused.map(\.header.op) == [Op.reset] && refused.first?.header.destinationPort == 40001)
    }

    @Test("credit: the device sends no more than the guest's buffer takes, asks for credit once, and resumes on a CREDIT_UPDATE")
    func credit() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(32)
        let host = try HostSocket(connectingTo: driver.path)
        host.write("CONNECT 7\n")
        driver.vsock.process()
        let request = try #require(try driver.received().first)
        let hostPort = request.header.sourcePort
        // The guest's buffer: 6000 bytes.
        try driver.send(driver.packet(Op.response, port: 7, hostPort: hostPort, bufferAllocation: 6000))
        _ = host.read(exactly: "OK \(hostPort)\n".utf8.count)
        let data = Self.bytes(20000, seed: 4)
        host.write(data)
        driver.vsock.process()
        var packets = try driver.received()
        let first = packets.filter { $0.header.op == Op.rw }.flatMap(\.payload)
        #expect(first == Array(data[..<6000]), "exactly the guest's 6000 bytes of credit")
        #expect(packets.filter { $0.header.op == Op.creditRequest }.count == 1, "one CREDIT_REQUEST for the stall")
        driver.vsock.process()
        #expect(try driver.received().isEmpty, "nothing more without credit")
        try driver.send(driver.packet(Op.creditUpdate, port: 7, hostPort: hostPort, bufferAllocation: 6000, forwardCount: 6000))
        packets = try driver.received()
        #expect(packets.filter { $0.header.op == Op.rw }.flatMap(\.payload) == Array(data[6000..<12000]))
    }

    @Test("a guest with a small buffer (it counts the device's as no larger than its own, as Linux does) is told its credit grew after each forward, so it never waits for ever")
    func smallGuestBuffer() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(16)
        let listener = try HostListener(driver.path + "_6000")
        try driver.send(driver.packet(Op.request, port: 700, hostPort: 6000, bufferAllocation: 16384))
        #expect(try driver.received().map(\.header.op) == [Op.response])
        let host = try #require(listener.accept())
        // The guest's whole 16 KiB of credit, as it sees it.
        let payload = Self.bytes(16384, seed: 8)
        try driver.send(driver.packet(Op.rw, port: 700, hostPort: 6000, length: UInt32(payload.count), bufferAllocation: 16384), payload)
        #expect(host.read(exactly: payload.count) == payload)
        let update = try driver.received().first { $0.header.op == Op.creditUpdate }
        #expect(update?.header.forwardCount == 16384, "a CREDIT_UPDATE with fwd_cnt 16384: \(String(describing: update?.header))")
    }

    @Test("a guest sending beyond its credit while the host program does not read gets an RST; the device holds at most its buffer")
    func overrun() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(32)
        let (host, hostPort) = try Self.connectFromHost(driver, port: 9)
        let chunk = Self.bytes(65536, seed: 5)
        var reset = false
        for _ in 0..<40 where !reset {
            try driver.send(driver.packet(Op.rw, port: 9, hostPort: hostPort, length: UInt32(chunk.count)), chunk)
            reset = try driver.received().contains { $0.header.op == Op.reset }
        }
        #expect(reset, "the device reset a connection that ran past its 256 KiB of credit")
        _ = host
    }

    @Test("guest's close with bytes the host program has not taken yet: they still reach it, then end of file")
    func drainOnClose() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(16)
        let (host, hostPort) = try Self.connectFromHost(driver, port: 11)
        var sent: [UInt8] = []
        for index in 0..<6 {
            let chunk = Self.bytes(65536, seed: UInt8(index))
            sent += chunk
            try driver.send(driver.packet(Op.rw, port: 11, hostPort: hostPort, length: UInt32(chunk.count)), chunk)
        }
        try driver.send(driver.packet(Op.shutdown, port: 11, hostPort: hostPort, flags: VsockHeader.Shutdown.both))
        var got: [UInt8] = []
        while got.count < sent.count {
            guard let chunk = host.read(), !chunk.isEmpty else { break }
            got += chunk
            driver.vsock.process()  // the device thread, woken by the socket turning writable
        }
        #expect(got == sent)
        driver.vsock.process()
        #expect(host.read() == [], "end of file once everything was handed over")
    }

    @Test("hostile packets: short, lying about their length, from another CID, to another CID, of another type — dropped or reset, never a failed device")
    func hostilePackets() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(16)
        // A 10-byte "header".
        try driver.memory.write(Self.bytes(10, seed: 9), at: GuestAddress(0x900000))
        try driver.post(queue: 1, [(0x900000, 10, false)])
        // Length beyond what the chain carries; another source CID; another destination CID.
        try driver.send(driver.packet(Op.rw, port: 1, hostPort: 2, length: 5000), Self.bytes(100, seed: 1))
        var spoofed = driver.packet(Op.request, port: 1, hostPort: 2)
        spoofed.sourceCID = 7
        try driver.send(spoofed)
        var elsewhere = driver.packet(Op.request, port: 1, hostPort: 2)
        elsewhere.destinationCID = 9
        try driver.send(elsewhere)
        #expect(driver.vsock.packetsDropped == 4)
        // SEQPACKET (not offered), an op that does not exist, RW with no connection: RSTs.
        var seqpacket = driver.packet(Op.request, port: 1, hostPort: 2)
        seqpacket.type = 2
        try driver.send(seqpacket)
        try driver.send(driver.packet(99, port: 1, hostPort: 2))
        try driver.send(driver.packet(Op.rw, port: 1, hostPort: 2, length: 4), [1, 2, 3, 4])
        #expect(try driver.received().map(\.header.op) == [Op.reset, Op.reset, Op.reset])
        #expect(!driver.needsReset && driver.transmitUsed == 7)
        // A receive chain too small for a header breaks the rules: NEEDS_RESET.
        let small = try VsockDriver()
        small.start()
        try small.post(queue: 0, [(0x700000, 8, true)])
        try small.send(small.packet(Op.rw, port: 1, hostPort: 2, length: 4), [1, 2, 3, 4])
        #expect(small.needsReset)
    }

    @Test("a guest flooding requests while posting no receive buffers: the device stops taking packets at its reply limit, and resumes when buffers come")
    func floodWithoutBuffers() throws {
        let driver = try VsockDriver()
        driver.start()
        // 400 requests to ports nobody listens on, in batches (the ring holds 64).
        var sent = 0
        for _ in 0..<20 {
            for _ in 0..<20 {
                try driver.send(driver.packet(Op.request, port: UInt32(50000 + sent), hostPort: 6000), notify: false)
                sent += 1
            }
            driver.set(0x050, 1)
            if Int(driver.transmitUsed) < sent { break }
        }
        #expect(Int(driver.transmitUsed) == VirtioVsock.maximumReplies, "taken up to the reply limit, then no more")
        var resets = 0
        for _ in 0..<20 {
            try driver.postReceive(32)
            resets += try driver.received().filter { $0.header.op == Op.reset }.count
        }
        #expect(resets == sent && Int(driver.transmitUsed) == sent, "every request answered once buffers came")
    }

    @Test("a malformed CONNECT line closes the host program's socket; the guest hears nothing")
    func badCommand() throws {
        let driver = try VsockDriver()
        driver.start()
        try driver.postReceive(4)
        for line in ["CONNECT\n", "CONNECT 12x\n", "HELLO 5\n", "CONNECT 99999999999\n", String(repeating: "A", count: 100)] {
            let host = try HostSocket(connectingTo: driver.path)
            host.write(line)
            driver.vsock.process()
            // Closed: end of file, or ECONNRESET when the device closed with the rest unread.
            let answer = host.read()
            #expect(answer == [] || (answer == nil && errno == ECONNRESET), "\(line.debugDescription): closed")
        }
        #expect(try driver.received().isEmpty && driver.vsock.openConnections == 0)
    }

    @Test("the socket path: a stale socket file (its VMM was killed) is replaced; a file that is not a socket, or a socket in use, is refused and left alone")
    func socketPath() throws {
        let driver = try VsockDriver()
        let other = driver.directory + "/other.sock"
        // In use: the driver's device listens at its path.
        #expect(throws: SystemError.self) { _ = try VirtioVsock(path: driver.path) }
        #expect(Files.kind(driver.path) == .other, "the listening socket is left alone")
        // Stale: a socket file nobody listens on.
        let stale = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in for (index, byte) in other.utf8.enumerated() { buffer[index] = byte } }
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(stale, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(stale)
        let replaced = try VirtioVsock(path: other)
        replaced.close()
        #expect(Files.kind(other) == .missing)
        // Not a socket.
        let file = driver.directory + "/file"
        try Data("keep".utf8).write(to: URL(fileURLWithPath: file))
        #expect(throws: SystemError.self) { _ = try VirtioVsock(path: file) }
        #expect(try String(contentsOfFile: file, encoding: .utf8) == "keep")
    }
}
