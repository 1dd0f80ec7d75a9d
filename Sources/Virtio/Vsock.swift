import CLinux
import GuestMemory
import HostOS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// virtio-vsock (virtio 1.x 5.10) in Firecracker's host model: the guest's `AF_VSOCK` stream
/// sockets meet host programs through Unix sockets, so no host vsock driver (vhost) is involved.
///
/// - **Host to guest.** The device listens at `path`. A host program connects and writes
///   `CONNECT <port>\n`; the device sends the guest a REQUEST for that port from a host port of its
///   own (counted from 2³⁰) and, when the guest accepts, writes `OK <host port>\n` back; then the
///   bytes flow. A guest that refuses (no listener: RST) closes the host program's socket.
/// - **Guest to host.** A guest socket connecting to CID 2 (the host), port P, is connected to
///   the Unix socket `<path>_P`; no listener there is an RST (the guest sees ECONNRESET).
///
/// Queues: receive (0, packets for the guest), transmit (1, the guest's), event (2, unused: it
/// carries only the transport-reset event after a snapshot restore). The guest's CID is in the
/// configuration space (3 by default). Stream sockets only (no SEQPACKET feature).
///
/// Flow control is the spec's credit: every packet carries the sender's buffer size and what it
/// has consumed, and nobody sends more than the other side has room for. The device's buffer is
/// `bufferSize` per connection — guest bytes the host socket has not taken yet wait there — and a
/// guest that sends beyond it gets an RST. Host bytes are read straight into the guest's receive
/// buffers only while the guest has credit, so a fast host program waits in its own socket.
///
/// Threading: host sockets are watched edge-triggered through one epoll descriptor (`pollDescriptor`),
/// which the VMM's device thread polls beside the queues' ioeventfds and serves with `process()`;
/// queue notifications come through `notified(queue:)`. Everything runs under `lock`, which is
/// taken before the transport's locks (`process(queue:)`); `reset()`, called under the
/// transport's locks, only raises a flag the next call acts on.
///
/// The guest is hostile: a packet it sends that is too short, lies about its length, names other
/// CIDs or breaks a connection's rules is dropped or answered with an RST, never a crash; what
/// the device keeps per guest action is bounded (connections, replies waiting for receive
/// buffers, bytes per connection).
public final class VirtioVsock: VirtioDevice, @unchecked Sendable {
    /// The host's context ID (VMADDR_CID_HOST), and the guest's unless told otherwise.
    public static let hostCID: UInt64 = 2
    public static let defaultGuestCID: UInt64 = 3
    /// Per connection, the guest bytes the device holds for a host socket that is slow (the
    /// buf_alloc it advertises): Firecracker's 256 KiB, as Linux's default.
    public static let bufferSize: UInt32 = 256 << 10
    /// The largest payload taken in one packet (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
    static let maximumPayload: UInt32 = 64 << 10
    /// The most connections at once, draining ones included (Firecracker: 1023).
    public static let maximumConnections = 1024
    /// The most replies waiting for guest receive buffers: past it the transmit queue waits.
    static let maximumReplies = 256
    /// The longest `CONNECT <port>\n` line a host program may send.
    static let maximumCommand = 32
    /// Host ports of host-initiated connections start here (as Firecracker's).
    static let firstLocalPort: UInt32 = 1 << 30
    /// Packets moved per call before the device thread gets to other queues (it is woken again).
    static let packetsPerPass = 256
    enum Queue { static let receive = 0, transmit = 1, event = 2 }
    enum Token { static let listener: UInt64 = 0, kick: UInt64 = 1, firstConnection: UInt64 = 2 }

    /// The Unix socket host programs connect to; `<path>_PORT` are the guest's connections.
    public let path: String
    public let guestCID: UInt64
    let listener: UnixListener
    let epoll: FileDescriptor
    /// Makes `epoll` readable when a call stopped with work left (`packetsPerPass`).
    let kick: EventFD
    /// Set by the VMM once the transport exists (the transport holds the device).
    public weak var transport: MMIOTransport?

    private let lock = Lock()
    private let resetRequested = Atomic<Bool>(false)
    private var connections: [VsockConnection.Key: VsockConnection] = [:]
    private var byToken: [UInt64: VsockConnection] = [:]
    /// RSTs owed for packets that have no connection.
    private var replies: [VsockHeader] = []
    private var nextToken = Token.firstConnection
    private var nextLocalPort = VirtioVsock.firstLocalPort
    /// The transmit queue may hold packets not taken yet (replies had no room, or a pass ended).
    private var transmitPending = false
    /// A transport reset was announced and the driver has not acted on it yet: nothing goes into
    /// its receive queue until it posts an event buffer again (see `announceTransportReset`).
    private var awaitingResetAck = false
    private var closed = false

    /// For the run report.
    public private(set) var connectionsOpened: UInt64 = 0
    public private(set) var packetsDropped: UInt64 = 0
    public private(set) var resets: UInt64 = 0

    /// Listens at `path` for host programs. A socket file left there by a VMM that was killed
    /// (nobody listens) is replaced; a path that is not a socket, or one something listens on, is
    /// an error naming it, and nothing is made.
    public init(path: String, guestCID: UInt64 = VirtioVsock.defaultGuestCID) throws(SystemError) {
        self.path = path
        self.guestCID = guestCID
        listener = try UnixListener(path: path, what: "vsock")
        let fd = listener.fd.rawValue
        let epollFD = clinux_epoll_create()
        guard epollFD >= 0 else {
            listener.close()
            throw SystemError("epoll_create1", "vsock", errno: -epollFD)
        }
        epoll = FileDescriptor(adopting: epollFD, label: "vsock epoll")
        do { kick = try EventFD() } catch {
            listener.close()
            throw error
        }
        let listening = clinux_epoll_watch(epollFD, fd, CLINUX_EPOLLIN, Token.listener, 0)
        let kicking = clinux_epoll_watch(epollFD, kick.fd.rawValue, CLINUX_EPOLLIN, Token.kick, 0)
        guard listening == 0, kicking == 0 else {
            listener.close()
            throw SystemError("epoll_ctl", "vsock", errno: -(listening != 0 ? listening : kicking))
        }
    }

    deinit { close() }

    /// Removes the socket file and drops every connection (the VMM calls it when the run ends; a
    /// killed VMM's file is replaced by the next run that names the same path).
    public func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            listener.close()
            connections.removeAll()
            byToken.removeAll()
        }
    }

    public var deviceID: UInt32 { 19 }
    public var features: UInt64 { 0 }
    public var queueCount: Int { 3 }

    /// The connections and the replies go with the driver (the guest's sockets are gone).
    public func reset() { resetRequested.store(true, ordering: .releasing) }

    /// virtio_vsock_config: guest_cid (le64) at 0.
    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for index in 0..<data.count {
            let byte = offset + index
            data[index] = byte >= 0 && byte < 8 ? UInt8(truncatingIfNeeded: guestCID >> (8 * UInt64(byte))) : 0
        }
    }

    /// Never called: every queue is paced by the device (`notified` answers false).
    public func handle(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) throws(VirtqueueError) -> UInt32 { 0 }

    /// The driver added receive buffers or transmit packets, or an event buffer (after a
    /// transport reset: it has acted on the reset).
    public func notified(queue: Int) -> Bool {
        lock.withLock {
            guard prepare() else { return }
            if queue == Queue.event {
                guard awaitingResetAck else { return }
                awaitingResetAck = false
            }
            if queue == Queue.transmit { transmitPending = true }
            exchange()
        }
        return false
    }

    /// virtio_vsock_event's id for a transport reset (virtio 1.x 5.10.6.6.1).
    static let eventTransportReset: UInt32 = 0

    /// After a snapshot restore, before the guest runs: VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in the
    /// driver's next event buffer, as Firecracker sends it. The guest's connections had their host
    /// ends in the VMM the snapshot was taken from, so the driver resets every one (its programs
    /// see ECONNRESET) and reads its CID again; listening sockets stay. False when the device is
    /// not running or the driver posted no event buffer (then it has no connection to reset).
    ///
    /// Until the driver has acted on the event — Linux posts its event buffer again once it has
    /// reset its sockets — nothing goes into its receive queue (transmit packets are still taken):
    /// a host program that connects at once would otherwise have its REQUEST accepted by the
    /// guest before the reset, and the new connection reset with the old ones (Firecracker holds
    /// its receive queue the same way).
    @discardableResult
    public func announceTransportReset() -> Bool {
        guard let transport else { return false }
        // (Raised first: a driver that acts at once must find it raised.)
        lock.withLock { awaitingResetAck = true }
        let announced = transport.deliver(queue: Queue.event) { (chain: DescriptorChain) throws(VirtqueueError) -> UInt32 in
            let writable = chain.buffers.drop { !$0.writable }
            guard chain.writableLength >= 4 else {
                throw VirtqueueError("event chain at \(chain.head): \(chain.writableLength) writable bytes, less than a 4-byte virtio_vsock_event")
            }
            try HostBuffers.scatter(withUnsafeBytes(of: Self.eventTransportReset.littleEndian, Array.init), into: writable, at: 0, transport.memory)
            return 4
        }
        if !announced { lock.withLock { awaitingResetAck = false } }
        return announced
    }

    /// The descriptor the device thread polls: readable when a host socket has news.
    public var pollDescriptor: Int32 { epoll.rawValue }

    /// Serves what the host sockets reported (the device thread calls it when `pollDescriptor`
    /// is readable).
    public func process() {
        lock.withLock {
            guard prepare() else { return }
            var tokens = [UInt64](repeating: 0, count: 64), events = [UInt32](repeating: 0, count: 64)
            for _ in 0..<16 {
                let count = clinux_epoll_ready(epoll.rawValue, &tokens, &events, 64)
                guard count > 0 else { break }
                for index in 0..<Int(count) { event(tokens[index], events[index]) }
                if count < 64 { break }
            }
            exchange()
        }
    }

    /// Connections open now (host programs waiting for their CONNECT line included).
    public var openConnections: Int { lock.withLock { byToken.count } }

    // MARK: - Under `lock`

    /// Acts on a reset the transport asked for; false once closed.
    private func prepare() -> Bool {
        guard !closed else { return false }
        if resetRequested.exchange(false, ordering: .acquiring) {
            for connection in byToken.values { _ = clinux_epoll_forget(epoll.rawValue, connection.socket.rawValue) }
            connections.removeAll()
            byToken.removeAll()
            replies.removeAll()
            transmitPending = false
            awaitingResetAck = false
        }
        return true
    }

    /// One epoll event.
    private func event(_ token: UInt64, _ events: UInt32) {
        switch token {
        case Token.listener: accept()
        case Token.kick:
            var count: UInt64 = 0
            _ = read(kick.fd.rawValue, &count, 8)
        default:
            guard let connection = byToken[token] else { return }
            if events & (CLINUX_EPOLLIN | CLINUX_EPOLLHUP | CLINUX_EPOLLRDHUP | CLINUX_EPOLLERR) != 0 { connection.readable = true }
            if events & (CLINUX_EPOLLOUT | CLINUX_EPOLLERR | CLINUX_EPOLLHUP) != 0 { connection.writable = true }
            if case .awaitingCommand = connection.state { readCommand(connection) }
            if connection.writable { forward(connection) }
        }
    }

    /// Takes host programs' connections; past `maximumConnections` one is closed at once.
    private func accept() {
        while true {
            let fd = clinux_unix_accept(listener.fd.rawValue)
            guard fd >= 0 else {
                if fd == -EINTR || fd == -ECONNABORTED { continue }
                return
            }
            guard byToken.count < Self.maximumConnections else {
                Glibc.close(fd)
                continue
            }
            let connection = VsockConnection(socket: FileDescriptor(adopting: fd, label: "vsock host connection"), token: nextToken,
                                              state: .awaitingCommand([]))
            nextToken += 1
            guard watch(connection) else { continue }
            // Its line may be there already (its own edge would come on the next wait).
            connection.readable = true
            readCommand(connection)
        }
    }

    private func watch(_ connection: VsockConnection) -> Bool {
        // Room for the guest's whole credit in the socket itself, so a host program that reads
        // a moment late does not turn each packet into a copy into `outgoing` and an EPOLLOUT.
        var size = Int32(Self.bufferSize)
        _ = setsockopt(connection.socket.rawValue, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let events = CLINUX_EPOLLIN | CLINUX_EPOLLOUT | CLINUX_EPOLLRDHUP | CLINUX_EPOLLET
        guard clinux_epoll_watch(epoll.rawValue, connection.socket.rawValue, events, connection.token, 0) == 0 else { return false }
        byToken[connection.token] = connection
        return true
    }

    /// Drops a connection for good (its socket closes with the last reference: a pass in
    /// progress may still hold one, so it is marked to be left alone).
    private func forget(_ connection: VsockConnection) {
        connection.retire()
        _ = clinux_epoll_forget(epoll.rawValue, connection.socket.rawValue)
        byToken[connection.token] = nil
        if let key = connection.key, connections[key] === connection { connections[key] = nil }
    }

    /// Reads a host program's `CONNECT <port>\n` a byte at a time (nothing after the line is
    /// taken: it is the stream's first data); a line that is not one closes the connection.
    private func readCommand(_ connection: VsockConnection) {
        guard case .awaitingCommand(var line) = connection.state else { return }
        while true {
            var byte: UInt8 = 0
            let count = read(connection.socket.rawValue, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            if count < 0 && errno == EAGAIN {
                connection.readable = false
                connection.state = .awaitingCommand(line)
                return
            }
            guard count == 1, line.count < Self.maximumCommand else { return forget(connection) }
            if byte != UInt8(ascii: "\n") {
                line.append(byte)
                continue
            }
            let words = String(decoding: line, as: UTF8.self).split(separator: " ")
            guard words.count == 2, words[0] == "CONNECT", let port = UInt32(words[1]) else { return forget(connection) }
            var local = nextLocalPort
            while connections[VsockConnection.Key(local: local, peer: port)] != nil { local &+= 1 }
            nextLocalPort = local &+ 1 < Self.firstLocalPort ? Self.firstLocalPort : local &+ 1
            let key = VsockConnection.Key(local: local, peer: port)
            connection.key = key
            connection.state = .requested
            connection.owesRequest = true
            connections[key] = connection
            return
        }
    }

    /// Hands waiting guest bytes to the host socket; shuts its write side once the guest will
    /// send no more; a draining connection goes when its bytes are out. A failed socket is an RST.
    private func forward(_ connection: VsockConnection) {
        guard connection.flush() else { return abort(connection) }
        if connection.outgoing.isEmpty {
            if connection.draining { return forget(connection) }
            if connection.guestSendShut { shutdown(connection.socket.rawValue, Int32(SHUT_WR)) }
        }
        creditCheck(connection)
    }

    /// Tells the guest its credit grew once it believes less than half its room is left: early
    /// enough that a sender never stops to wait for the update (at Linux's own threshold, a
    /// packet's worth, a 64 KiB sender stalls every 256 KiB for a round trip), rarely enough that
    /// updates cost nothing (one per 128 KiB). The guest counts the device's buffer as at most its
    /// own (Linux caps the peer's buf_alloc at its buf_alloc): a guest with a small buffer is told
    /// after every forward, or it would wait for ever.
    private func creditCheck(_ connection: VsockConnection) {
        guard connection.state == .established, !connection.draining else { return }
        let unannounced = connection.forwarded &- connection.advertisedForward
        let inFlight = connection.received &- connection.advertisedForward
        let room = min(Self.bufferSize, connection.peerBufferAllocation)
        let guestView = inFlight >= room ? 0 : room - inFlight
        if unannounced > 0 && guestView < room / 2 { connection.owesCreditUpdate = true }
    }

    /// The guest's end is gone (or broke the rules): an RST for it, and the host socket closes
    /// (with what the guest sent still handed over when the guest asked for the close).
    private func abort(_ connection: VsockConnection, reply: Bool = true, keepOutgoing: Bool = false) {
        if reply, let key = connection.key { replies.append(header(key, op: VsockHeader.Op.reset)) }
        resets += 1
        if let key = connection.key, connections[key] === connection { connections[key] = nil }
        if keepOutgoing && !connection.outgoing.isEmpty {
            connection.retire()
            return
        }
        forget(connection)
    }

    /// A packet header for connection `key`, carrying the device's credit; the connection then
    /// counts what it told the guest.
    private func header(_ key: VsockConnection.Key, op: UInt16, length: UInt32 = 0, flags: UInt32 = 0) -> VsockHeader {
        let connection = connections[key]
        if let connection { connection.advertisedForward = connection.forwarded }
        return VsockHeader(sourceCID: Self.hostCID, destinationCID: guestCID, sourcePort: key.local, destinationPort: key.peer,
                           length: length, op: op, flags: flags, bufferAllocation: Self.bufferSize,
                           forwardCount: connection?.forwarded ?? 0)
    }

    // MARK: Transmit (the guest's packets)

    /// Takes the guest's packets while replies have room for what they may cause.
    private func transmit() {
        guard let transport else { return }
        let limit = min(max(0, Self.maximumReplies - pendingReplies), Self.packetsPerPass)
        let taken = transport.process(queue: Queue.transmit, upTo: limit) { (chain: DescriptorChain) throws(VirtqueueError) -> UInt32? in
            self.packet(chain, transport.memory)
            return 0
        }
        transmitPending = taken == limit
    }

    /// Packets owed to the guest that are not data: RSTs, and connections owing control packets.
    private var pendingReplies: Int { replies.count + byToken.values.reduce(0) { $0 + ($1.owesControl ? 1 : 0) } }

    /// Whether replies have room for what more transmit packets may cause.
    private var replyRoom: Bool { pendingReplies < Self.maximumReplies }

    /// One packet from the guest. Malformed ones are dropped and counted.
    private func packet(_ chain: DescriptorChain, _ memory: GuestMemory) {
        let readable = chain.buffers.prefix { !$0.writable }
        let total = readable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        guard total >= UInt64(VsockHeader.size),
              let bytes = try? HostBuffers.gather(readable, from: 0, count: VsockHeader.size, memory), bytes.count == VsockHeader.size else {
            packetsDropped += 1
            return
        }
        let header = VsockHeader(bytes)
        // Only the guest's own address, to the host; a payload it really carries, RW only.
        guard header.sourceCID == guestCID, header.destinationCID == Self.hostCID,
              UInt64(header.length) <= total - UInt64(VsockHeader.size), header.length <= Self.maximumPayload,
              header.length == 0 || header.op == VsockHeader.Op.rw else {
            packetsDropped += 1
            return
        }
        let key = VsockConnection.Key(local: header.destinationPort, peer: header.sourcePort)
        guard header.type == VsockHeader.stream else {
            if header.op != VsockHeader.Op.reset { replies.append(self.header(key, op: VsockHeader.Op.reset)) }
            return
        }
        guard let connection = connections[key] else {
            if header.op == VsockHeader.Op.request { return connect(key, header) }
            if header.op != VsockHeader.Op.reset { replies.append(self.header(key, op: VsockHeader.Op.reset)) }
            return
        }
        connection.peerBufferAllocation = header.bufferAllocation
        connection.peerForwardCount = header.forwardCount
        if connection.peerCredit > 0 { connection.askedForCredit = false }
        switch header.op {
        case VsockHeader.Op.response:
            guard connection.state == .requested else { return abort(connection) }
            connection.state = .established
            // The OK line is the device's, not the guest's data: it does not count as forwarded.
            let line = Array("OK \(key.local)\n".utf8)
            connection.outgoing = line + connection.outgoing
            connection.preamble += line.count
            connectionsOpened += 1
            forward(connection)
        case VsockHeader.Op.rw:
            guard connection.state == .established, !connection.guestSendShut else { return abort(connection) }
            guard header.length <= Self.bufferSize &- connection.unforwarded else { return abort(connection) }  // beyond its credit
            guard header.length > 0 else { return }
            let payload = readable
            connection.received &+= header.length
            if connection.outgoing.isEmpty && connection.writable {
                guard let vectors = HostBuffers.vectors(payload, skipping: UInt64(VsockHeader.size), length: UInt64(header.length), memory),
                      vectors.count <= HostBuffers.maximumVectors else { return abort(connection) }
                guard let count = connection.sendVectors(vectors) else { return abort(connection) }
                connection.forwarded &+= UInt32(count)
                if count < Int(header.length) {
                    guard let rest = try? HostBuffers.gather(payload, from: UInt64(VsockHeader.size + count), count: Int(header.length) - count, memory) else {
                        return abort(connection)
                    }
                    connection.outgoing = rest
                }
            } else {
                guard let bytes = try? HostBuffers.gather(payload, from: UInt64(VsockHeader.size), count: Int(header.length), memory) else {
                    return abort(connection)
                }
                connection.outgoing += bytes
            }
            forward(connection)
        case VsockHeader.Op.creditUpdate:
            break
        case VsockHeader.Op.creditRequest:
            connection.owesCreditUpdate = true
        case VsockHeader.Op.shutdown:
            if header.flags & VsockHeader.Shutdown.receive != 0 { connection.guestReceiveShut = true }
            if header.flags & VsockHeader.Shutdown.send != 0 { connection.guestSendShut = true }
            if connection.guestReceiveShut && connection.guestSendShut {
                // The guest closed its socket: an RST ends it; its last bytes still reach the host.
                guard connection.flush() else { return abort(connection) }
                abort(connection, keepOutgoing: true)
            } else {
                forward(connection)
            }
        case VsockHeader.Op.reset:
            abort(connection, reply: false)
        default:
            // REQUEST on an open connection, or an op that does not exist.
            abort(connection)
        }
    }

    /// The guest connects to host port `key.local`: the Unix socket `<path>_PORT`.
    private func connect(_ key: VsockConnection.Key, _ header: VsockHeader) {
        guard byToken.count < Self.maximumConnections else { return replies.append(self.header(key, op: VsockHeader.Op.reset)) }
        let fd = clinux_unix_connect("\(path)_\(key.local)")
        guard fd >= 0 else { return replies.append(self.header(key, op: VsockHeader.Op.reset)) }
        let connection = VsockConnection(socket: FileDescriptor(adopting: fd, label: "\(path)_\(key.local)"), token: nextToken, state: .established)
        nextToken += 1
        connection.key = key
        connection.peerBufferAllocation = header.bufferAllocation
        connection.peerForwardCount = header.forwardCount
        connection.owesResponse = true
        guard watch(connection) else { return replies.append(self.header(key, op: VsockHeader.Op.reset)) }
        connections[key] = connection
        connectionsOpened += 1
    }

    // MARK: Receive (packets for the guest)

    /// Moves packets both ways as far as they go now: the guest's transmit packets (while replies
    /// have room), then what is owed to it — RSTs, each connection's control packets, data
    /// round-robin — into its receive buffers. Bounded: with work left, `kick` brings the device
    /// thread back after it served the other queues. Nothing is retried while the guest posts no
    /// receive buffers (its next notification resumes it).
    private func exchange() {
        guard let transport else { return }
        for _ in 0..<4 {
            if transmitPending && replyRoom { transmit() }
            guard !awaitingResetAck else { return }
            var order = byToken.values.filter { $0.key != nil }.sorted { $0.key! < $1.key! }
            var cursor = 0
            let delivered = transport.process(queue: Queue.receive, upTo: Self.packetsPerPass) { (chain: DescriptorChain) throws(VirtqueueError) -> UInt32? in
                try self.fill(chain, transport.memory, &order, &cursor)
            }
            guard (transmitPending && replyRoom) || delivered == Self.packetsPerPass else { return }
        }
        kick.signal()
    }

    /// The next packet owed to the guest, written into `chain`; nil when nothing is owed.
    private func fill(_ chain: DescriptorChain, _ memory: GuestMemory, _ order: inout [VsockConnection], _ cursor: inout Int) throws(VirtqueueError) -> UInt32? {
        let writable = chain.buffers.drop { !$0.writable }
        let room = writable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        guard room >= UInt64(VsockHeader.size) else {
            throw VirtqueueError("receive chain at \(chain.head): \(room) writable bytes, less than a \(VsockHeader.size)-byte header")
        }
        if !replies.isEmpty {
            try HostBuffers.scatter(replies.removeFirst().bytes, into: writable, at: 0, memory)
            return UInt32(VsockHeader.size)
        }
        // Control packets first, each connection in turn.
        for connection in order where connection.owesControl && !connection.draining {
            guard let key = connection.key else { continue }
            let packet: VsockHeader
            if connection.owesRequest {
                connection.owesRequest = false
                packet = header(key, op: VsockHeader.Op.request)
            } else if connection.owesResponse {
                connection.owesResponse = false
                packet = header(key, op: VsockHeader.Op.response)
            } else if connection.owesShutdown != 0 {
                packet = header(key, op: VsockHeader.Op.shutdown, flags: connection.owesShutdown)
                connection.owesShutdown = 0
            } else if connection.owesCreditRequest {
                connection.owesCreditRequest = false
                packet = header(key, op: VsockHeader.Op.creditRequest)
            } else {
                connection.owesCreditUpdate = false
                packet = header(key, op: VsockHeader.Op.creditUpdate)
            }
            try HostBuffers.scatter(packet.bytes, into: writable, at: 0, memory)
            return UInt32(VsockHeader.size)
        }
        // Data: the next connection with something to read and credit to send it.
        var tried = 0
        while tried < order.count {
            let connection = order[cursor % order.count]
            cursor += 1
            tried += 1
            guard let key = connection.key else { continue }
            guard connection.wantsToRead else {
                // Host bytes wait for a guest that has no room: ask it, once per stall, to say
                // when it has (Linux tells on its own only as its reader drains the buffer).
                if connection.state == .established && connection.readable && connection.peerCredit == 0 && !connection.askedForCredit
                    && !connection.draining && !connection.hostSendShut && !connection.guestReceiveShut {
                    connection.askedForCredit = true
                    try HostBuffers.scatter(header(key, op: VsockHeader.Op.creditRequest).bytes, into: writable, at: 0, memory)
                    return UInt32(VsockHeader.size)
                }
                continue
            }
            let length = min(room - UInt64(VsockHeader.size), UInt64(connection.peerCredit), UInt64(Self.maximumPayload))
            guard length > 0, let vectors = HostBuffers.vectors(writable, skipping: UInt64(VsockHeader.size), length: length, memory),
                  vectors.count <= HostBuffers.maximumVectors else {
                throw VirtqueueError("receive chain at \(chain.head): a buffer outside guest RAM")
            }
            let count = vectors.withUnsafeBufferPointer { readv(connection.socket.rawValue, $0.baseAddress, Int32($0.count)) }
            if count < 0 {
                if errno == EAGAIN || errno == EINTR { connection.readable = errno == EINTR; continue }
                // The host program's socket failed: the guest's end is reset.
                abort(connection)
                try HostBuffers.scatter(replies.removeLast().bytes, into: writable, at: 0, memory)
                return UInt32(VsockHeader.size)
            }
            var packet: VsockHeader
            if count == 0 {
                // End of file: the host program sends no more.
                connection.hostSendShut = true
                packet = header(key, op: VsockHeader.Op.shutdown, flags: VsockHeader.Shutdown.send)
            } else {
                connection.sent &+= UInt32(count)
                packet = header(key, op: VsockHeader.Op.rw, length: UInt32(count))
            }
            try HostBuffers.scatter(packet.bytes, into: writable, at: 0, memory)
            return UInt32(VsockHeader.size + count)
        }
        return nil
    }
}
