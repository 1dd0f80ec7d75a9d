import CLinux
import GuestMemory
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// virtio-net (virtio 1.x 5.1) on a tap: Ethernet frames between the guest and a host interface,
/// with what Firecracker offers — a MAC address, one receive queue (0) and one transmit queue
/// (1), checksum and TCP segmentation offload both ways (so a TCP stream moves in frames of up to
/// 64 KiB, not 1.5 KiB), no mergeable receive buffers, no control queue.
///
/// Every buffer starts with the 12-byte virtio_net_hdr, and the tap is opened with IFF_VNET_HDR,
/// so headers pass through unchanged both ways, as Firecracker and QEMU pass them: the host
/// kernel checks a header the guest wrote (virtio_net_hdr_to_skb) and drops a frame whose header
/// lies; at DRIVER_OK the tap is told which offloaded frames the driver accepts (TUNSETOFFLOAD).
///
/// Transmit is served on notification (`handle`, queue 1): one writev per frame. Receive starts
/// on the host: the device thread calls `receive()` when the tap is readable or the driver adds
/// buffers. A frame read from the tap waits in `pending` until the guest has a buffer (as
/// Firecracker's deferred frame), and while one waits the tap is not watched, so a guest that
/// posts no buffers costs nothing and loses only what the tap's own queue drops.
public final class VirtioNet: VirtioDevice, @unchecked Sendable {
    /// Feature bits (5.1.3).
    public static let featureCSUM: UInt64 = 1 << 0, featureGuestCSUM: UInt64 = 1 << 1, featureMAC: UInt64 = 1 << 5
    public static let featureGuestTSO4: UInt64 = 1 << 7, featureGuestTSO6: UInt64 = 1 << 8
    public static let featureHostTSO4: UInt64 = 1 << 11, featureHostTSO6: UInt64 = 1 << 12
    /// TUNSETOFFLOAD flags (linux/if_tun.h).
    enum TunOffload { static let csum: UInt32 = 1, tso4: UInt32 = 2, tso6: UInt32 = 4 }
    /// The header every buffer starts with when VERSION_1 is negotiated (5.1.6).
    public static let headerSize = 12
    /// The most one read from the tap returns: the header and a 64 KiB segmented frame with its
    /// Ethernet and VLAN headers.
    public static let maximumFrame = headerSize + 65535 + 18
    enum Queue { static let receive = 0, transmit = 1 }

    public let mac: [UInt8]
    /// The tap's name, for messages.
    public let interfaceName: String
    let tap: FileDescriptor
    /// Set by the VMM once the transport exists (the transport holds the device).
    public weak var transport: MMIOTransport?
    /// Guards `pending` and the receive buffer; taken before the transport's locks (`receive`
    /// → `deliver`), so nothing the transport calls under its locks may take it.
    private let lock = Lock()
    /// Guards the counters only (a leaf: taken under any other lock, never holding one).
    private let counters = Lock()
    private var pending: [UInt8]?
    private var buffer = [UInt8](repeating: 0, count: VirtioNet.maximumFrame)
    /// Frames counted for the run report.
    public private(set) var framesReceived: UInt64 = 0
    public private(set) var framesSent: UInt64 = 0
    public private(set) var framesDropped: UInt64 = 0

    /// Takes ownership of `tap` (a non-blocking tap descriptor).
    public init(tap: FileDescriptor, interfaceName: String, mac: [UInt8]) {
        precondition(mac.count == 6, "a MAC address is 6 bytes")
        self.tap = tap
        self.interfaceName = interfaceName
        self.mac = mac
    }

    public var deviceID: UInt32 { 1 }
    public var features: UInt64 {
        Self.featureMAC | Self.featureCSUM | Self.featureGuestCSUM | Self.featureGuestTSO4 | Self.featureGuestTSO6
            | Self.featureHostTSO4 | Self.featureHostTSO6
    }

    /// Tells the tap which offloaded frames the driver takes (a guest that accepted no checksum
    /// offload gets only complete frames); an ioctl failure leaves the tap sending plain frames.
    public func activate(features: UInt64) {
        var flags: UInt32 = 0
        if features & Self.featureGuestCSUM != 0 {
            flags |= TunOffload.csum
            if features & Self.featureGuestTSO4 != 0 { flags |= TunOffload.tso4 }
            if features & Self.featureGuestTSO6 != 0 { flags |= TunOffload.tso6 }
        }
        _ = clinux_tap_offload(tap.rawValue, flags)
    }
    public var queueCount: Int { 2 }
    /// Nothing to forget: the transport forgets the queues, and a frame waiting for a buffer is
    /// delivered once the driver posts new ones (clearing it here would take `lock` under the
    /// transport's, the other way round from `receive`).
    public func reset() {}

    /// virtio_net_config: mac[6] at 0; the rest belongs to features not offered and reads as 0.
    public func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) {
        for index in 0..<data.count {
            let byte = offset + index
            data[index] = byte >= 0 && byte < 6 ? mac[byte] : 0
        }
    }

    /// The receive queue is filled from the host side (`receive`), not served on notification.
    public func notified(queue: Int) -> Bool {
        guard queue == Queue.receive else { return true }
        receive()
        return false
    }

    /// The tap's descriptor, for the device thread's poll.
    public var tapDescriptor: Int32 { tap.rawValue }

    /// Whether the device thread should watch the tap: not while a frame waits for a buffer.
    public var wantsFrames: Bool { lock.withLock { pending == nil } }

    /// Transmit: the chain's readable bytes are a header and one frame, written to the tap as
    /// they are. A frame the tap cannot take (its queue is full, a header it refuses) is dropped,
    /// as a NIC's would be; only a chain without a header breaks the rules.
    public func handle(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) throws(VirtqueueError) -> UInt32 {
        guard queue == Queue.transmit else { return 0 }
        let readable = chain.buffers.prefix { !$0.writable }
        let total = readable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
        guard total >= UInt64(Self.headerSize) else { throw VirtqueueError("transmit chain at \(chain.head): shorter than the \(Self.headerSize)-byte header") }
        guard let vectors = HostBuffers.vectors(readable, skipping: 0, length: total, memory),
              !vectors.isEmpty, vectors.count <= HostBuffers.maximumVectors else {
            counters.withLock { framesDropped += 1 }
            return 0
        }
        let sent = vectors.withUnsafeBufferPointer { writev(tap.rawValue, $0.baseAddress, Int32($0.count)) }
        counters.withLock { if sent < 0 { framesDropped += 1 } else { framesSent += 1 } }
        return 0
    }

    /// Moves frames from the tap into the guest's receive buffers while both have some: called
    /// by the device thread when the tap is readable and when the driver adds buffers.
    public func receive() {
        lock.withLock {
            // Bounded, so a flood on the tap cannot keep the device thread from the other queues.
            for _ in 0..<256 {
                if pending == nil {
                    let count = buffer.withUnsafeMutableBytes { read(tap.rawValue, $0.baseAddress, $0.count) }
                    guard count >= Self.headerSize else { return }
                    // The tap writes the first 10 header bytes; num_buffers (the last 2) is ours: 1.
                    buffer[10] = 1
                    buffer[11] = 0
                    pending = Array(buffer[..<count])
                }
                guard let frame = pending, let transport else { return }
                let delivered = transport.deliver(queue: Queue.receive) { (chain: DescriptorChain) throws(VirtqueueError) -> UInt32 in
                    let writable = chain.buffers.drop { !$0.writable }
                    let room = writable.reduce(UInt64(0)) { $0 + UInt64($1.length) }
                    guard room >= UInt64(frame.count) else {
                        counters.withLock { framesDropped += 1 }  // a buffer too small for the frame: returned empty
                        return 0
                    }
                    try HostBuffers.scatter(frame, into: writable, at: 0, transport.memory)
                    counters.withLock { framesReceived += 1 }
                    return UInt32(frame.count)
                }
                guard delivered else { return }  // no buffer: the frame waits, the tap is not watched
                pending = nil
            }
        }
    }
}
