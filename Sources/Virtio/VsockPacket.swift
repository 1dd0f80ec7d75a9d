/// The header every virtio-vsock packet starts with (virtio 1.x 5.10.6, `struct virtio_vsock_hdr`):
/// 44 bytes, little-endian, then `length` bytes of payload (RW packets only).
public struct VsockHeader: Equatable, Sendable {
    public static let size = 44
    /// VIRTIO_VSOCK_TYPE_STREAM: the only socket type offered (SEQPACKET is a feature not offered).
    public static let stream: UInt16 = 1

    /// Operations (VIRTIO_VSOCK_OP_*).
    public enum Op {
        public static let request: UInt16 = 1, response: UInt16 = 2, reset: UInt16 = 3, shutdown: UInt16 = 4
        public static let rw: UInt16 = 5, creditUpdate: UInt16 = 6, creditRequest: UInt16 = 7
    }
    /// SHUTDOWN flags: the sender will receive no more, will send no more.
    public enum Shutdown {
        public static let receive: UInt32 = 1, send: UInt32 = 2
        public static let both: UInt32 = 3
    }

    public var sourceCID: UInt64 = 0
    public var destinationCID: UInt64 = 0
    public var sourcePort: UInt32 = 0
    public var destinationPort: UInt32 = 0
    public var length: UInt32 = 0
    public var type: UInt16 = VsockHeader.stream
    public var op: UInt16 = 0
    public var flags: UInt32 = 0
    /// The sender's receive buffer for this connection, and the bytes it has taken from it: with
    /// them the receiver knows how much it may still send (the credit, 5.10.6.3).
    public var bufferAllocation: UInt32 = 0
    public var forwardCount: UInt32 = 0

    public init(sourceCID: UInt64 = 0, destinationCID: UInt64 = 0, sourcePort: UInt32 = 0, destinationPort: UInt32 = 0,
                length: UInt32 = 0, type: UInt16 = VsockHeader.stream, op: UInt16 = 0, flags: UInt32 = 0,
                bufferAllocation: UInt32 = 0, forwardCount: UInt32 = 0) {
        self.sourceCID = sourceCID
        self.destinationCID = destinationCID
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.length = length
        self.type = type
        self.op = op
        self.flags = flags
        self.bufferAllocation = bufferAllocation
        self.forwardCount = forwardCount
    }

    /// Parses the first `size` bytes of `bytes` (which holds at least that many).
    public init(_ bytes: [UInt8]) {
        precondition(bytes.count >= Self.size, "a vsock header is \(Self.size) bytes")
        func field<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            var value: T = 0
            for index in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + index]) << (8 * index) }
            return value
        }
        sourceCID = field(0, UInt64.self)
        destinationCID = field(8, UInt64.self)
        sourcePort = field(16, UInt32.self)
        destinationPort = field(20, UInt32.self)
        length = field(24, UInt32.self)
        type = field(28, UInt16.self)
        op = field(30, UInt16.self)
        flags = field(32, UInt32.self)
        bufferAllocation = field(36, UInt32.self)
        forwardCount = field(40, UInt32.self)
    }

    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.size)
        func append<T: FixedWidthInteger>(_ value: T) {
            for index in 0..<MemoryLayout<T>.size { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
        }
        append(sourceCID)
        append(destinationCID)
        append(sourcePort)
        append(destinationPort)
        append(length)
        append(type)
        append(op)
        append(flags)
        append(bufferAllocation)
        append(forwardCount)
        return bytes
    }
}
