import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// One stream between a guest `AF_VSOCK` socket and a host Unix socket, as the vsock device keeps
/// it: the host socket (non-blocking, watched edge-triggered, so `readable`/`writable` remember
/// what an edge said until a call answers EAGAIN), the two credit counters of each direction
/// (5.10.6.3), the guest's bytes the host socket has not taken yet, and the control packets owed
/// to the guest. Only the device touches it, under the device's lock.
final class VsockConnection {
    /// Host port (the device's side) and guest port: a connection's address as packets carry it.
    struct Key: Hashable, Comparable {
        var local: UInt32
        var peer: UInt32
        static func < (a: Key, b: Key) -> Bool { (a.local, a.peer) < (b.local, b.peer) }
    }

    enum State: Equatable {
        /// A host program connected to the device's socket and has not yet sent its whole
        /// `CONNECT <port>` line (the bytes so far).
        case awaitingCommand([UInt8])
        /// A REQUEST for the guest is owed or sent; the guest has not answered yet.
        case requested
        case established
    }

    let socket: FileDescriptor
    /// Its epoll token.
    let token: UInt64
    var key: Key?
    var state: State
    var readable = false
    var writable = true

    // Guest → host: what the guest sent, what the host socket took, what the guest was last told.
    var received: UInt32 = 0
    var forwarded: UInt32 = 0
    var advertisedForward: UInt32 = 0
    /// Guest bytes waiting for the host socket (at most the device's buffer: the guest's credit).
    var outgoing: [UInt8] = []
    /// How many bytes at the front of `outgoing` are the device's own (the `OK <port>` line),
    /// not the guest's: they are not counted as forwarded.
    var preamble = 0

    // Host → guest: the guest's buffer and how much of it it has taken, and what the device sent.
    var peerBufferAllocation: UInt32 = 0
    var peerForwardCount: UInt32 = 0
    var sent: UInt32 = 0

    // Control packets owed to the guest, sent in this order before any data.
    var owesRequest = false
    var owesResponse = false
    var owesCreditUpdate = false
    var owesCreditRequest = false
    /// SHUTDOWN flags owed (the host program closed its side: SEND).
    var owesShutdown: UInt32 = 0
    /// A CREDIT_REQUEST was sent for the current stall (one per stall).
    var askedForCredit = false

    /// The guest will send no more (its SHUTDOWN SEND): the host socket's write side is shut once
    /// `outgoing` is empty.
    var guestSendShut = false
    /// The guest takes no more (SHUTDOWN RECEIVE): the host socket is no longer read.
    var guestReceiveShut = false
    /// The host program's end reached end of file: SHUTDOWN SEND is owed or sent.
    var hostSendShut = false
    /// The connection is over for the guest (RST sent or received); the object lives on only to
    /// hand `outgoing` to the host socket, then goes.
    var draining = false

    init(socket: FileDescriptor, token: UInt64, state: State) {
        self.socket = socket
        self.token = token
        self.state = state
    }

    /// Over for the guest: nothing more is read from the host socket or owed to the guest (what
    /// the guest sent may still be handed to the host socket).
    func retire() {
        draining = true
        readable = false
        owesRequest = false
        owesResponse = false
        owesCreditUpdate = false
        owesCreditRequest = false
        owesShutdown = 0
    }

    /// What the guest's buffer still takes (0 when the guest shrank it below what is in flight).
    var peerCredit: UInt32 {
        let inFlight = sent &- peerForwardCount
        return inFlight >= peerBufferAllocation ? 0 : peerBufferAllocation - inFlight
    }

    /// Guest bytes the device holds that the host socket has not taken.
    var unforwarded: UInt32 { received &- forwarded }

    var owesControl: Bool { owesRequest || owesResponse || owesCreditUpdate || owesCreditRequest || owesShutdown != 0 }

    /// Whether the host socket should be read now: data may be there, the guest can take some.
    var wantsToRead: Bool {
        state == .established && readable && !draining && !hostSendShut && !guestReceiveShut && peerCredit > 0
    }

    /// Hands as much of `outgoing` to the host socket as it takes. False when the socket failed
    /// (the host program is gone: EPIPE, ECONNRESET).
    func flush() -> Bool {
        while !outgoing.isEmpty && writable {
            let count = outgoing.withUnsafeBytes { Glibc.send(socket.rawValue, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT)) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { writable = false; return true }
                return false
            }
            outgoing.removeFirst(count)
            let own = min(count, preamble)
            preamble -= own
            forwarded &+= UInt32(count - own)
        }
        return true
    }

    /// Sends `vectors` (guest memory) to the host socket without waiting; the bytes sent, or nil
    /// when the socket failed. EAGAIN sends 0 and clears `writable`.
    func sendVectors(_ vectors: [iovec]) -> Int? {
        var vectors = vectors
        while true {
            let count = vectors.withUnsafeMutableBufferPointer { buffer -> Int in
                var message = msghdr()
                message.msg_iov = buffer.baseAddress
                message.msg_iovlen = buffer.count
                return sendmsg(socket.rawValue, &message, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if count >= 0 { return count }
            if errno == EINTR { continue }
            if errno == EAGAIN { writable = false; return 0 }
            return nil
        }
    }
}
