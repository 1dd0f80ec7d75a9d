import GuestMemory
import Synchronization

/// Why a queue cannot be used: the driver (the guest) broke the split-ring rules. The transport
/// answers with DEVICE_NEEDS_RESET; nothing the guest writes can make the VMM crash, hang or touch
/// host memory outside guest RAM.
public struct VirtqueueError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One buffer of a descriptor chain: guest memory the device reads (`writable` false) or writes.
public struct VirtqueueBuffer: Equatable, Sendable {
    public var address: GuestAddress
    public var length: UInt32
    public var writable: Bool
}

/// A request: the chain that starts at descriptor `head`, its buffers in order.
public struct DescriptorChain: Equatable, Sendable {
    public var head: UInt16
    public var buffers: [VirtqueueBuffer]
    /// Bytes the device may write (the sum of the writable buffers).
    public var writableLength: UInt64 { buffers.filter(\.writable).reduce(0) { $0 + UInt64($1.length) } }
}

/// A split virtqueue (virtio 1.x, 2.7): the descriptor table, the driver's available ring and the
/// device's used ring, all in guest memory at addresses the driver chose. Every index, address and
/// length read from guest memory is checked before it is used (Firecracker's `queue.rs` and
/// rust-vmm's `virtio-queue` were read for the rules):
///
/// - the size is a power of two, at most `maximumSize`; the rings are aligned (16, 2 and 4 bytes)
///   and lie inside guest RAM;
/// - the available index may run at most `size` ahead of what the device has taken;
/// - a head and every `next` are below `size`; a chain has at most `size` descriptors (a loop is
///   cut there), a total length below 4 GiB, and no readable buffer after a writable one;
/// - an indirect descriptor (2.7.5.3), where the driver accepted them, ends its chain (no NEXT)
///   and points to a table of whole descriptors in RAM, at most `maximumIndirect` of them, whose
///   own `next`s stay inside it and which holds no indirect descriptor itself; where the driver
///   did not accept them, one is an error.
///
/// Buffers are only described here; a device reads and writes them through `GuestMemory`, which
/// refuses any range outside RAM.
public struct Virtqueue: Sendable {
    /// The largest queue a device offers (QueueNumMax): QEMU's and Firecracker's default.
    public static let maximumSize: UInt16 = 256
    /// The most descriptors an indirect table may hold (QEMU's VIRTQUEUE_MAX_SIZE).
    public static let maximumIndirect: UInt64 = 1024

    public var size: UInt16 = maximumSize
    public var ready = false
    public var descriptorTable = GuestAddress(0)
    public var availableRing = GuestAddress(0)
    public var usedRing = GuestAddress(0)
    /// The driver accepted VIRTIO_RING_F_INDIRECT_DESC (the transport sets it with the queue).
    public var indirectDescriptors = false
    /// The next available-ring slot the device will take, and the next used-ring slot it fills.
    public private(set) var nextAvailable: UInt16 = 0
    public private(set) var nextUsed: UInt16 = 0

    public init() {}

    static let descriptorSize: UInt64 = 16
    static let flagNext: UInt16 = 1
    static let flagWrite: UInt16 = 2
    static let flagIndirect: UInt16 = 4

    /// What a driver set up is usable: checked when it marks the queue ready.
    public func validate(_ memory: GuestMemory) throws(VirtqueueError) {
        guard size > 0, size <= Self.maximumSize, size & (size - 1) == 0 else {
            throw VirtqueueError("queue size \(size): must be a power of two, at most \(Self.maximumSize)")
        }
        let count = UInt64(size)
        for (name, address, alignment, length) in [
            ("descriptor table", descriptorTable, UInt64(16), Self.descriptorSize * count),
            ("available ring", availableRing, UInt64(2), 6 + 2 * count),
            ("used ring", usedRing, UInt64(4), 6 + 8 * count),
        ] {
            guard address.value % alignment == 0 else { throw VirtqueueError("\(name) at \(address): not \(alignment)-byte aligned") }
            guard (try? memory.hostPointer(address, length: Int(length))) != nil else {
                throw VirtqueueError("\(name) at \(address) (\(length) bytes): outside guest RAM")
            }
        }
    }

    /// Resets the device's positions (the driver reset the device or the queue).
    /// Where a restored queue stands (a snapshot's `nextAvailable` and `nextUsed`).
    public mutating func restoreIndices(nextAvailable: UInt16, nextUsed: UInt16) {
        self.nextAvailable = nextAvailable
        self.nextUsed = nextUsed
    }

    public mutating func reset() {
        self = Virtqueue()
    }

    /// The chains the driver made available since the last call, in order. An error leaves the
    /// queue unusable until the driver resets it. The rings' host addresses are resolved once per
    /// call (they were checked to lie in RAM when the queue became ready), so each descriptor costs
    /// a few loads, not a lookup per field.
    public mutating func takeAvailable(_ memory: GuestMemory) throws(VirtqueueError) -> [DescriptorChain] {
        try take(upTo: Int(size), memory)
    }

    /// The next chain the driver made available, or nil when there is none (a receive queue
    /// takes one buffer per frame that arrived).
    public mutating func takeNext(_ memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain? {
        try take(upTo: 1, memory).first
    }

    /// Puts back the chain `takeNext` just returned, as if it had not been taken (its descriptors
    /// were only read): the device had nothing to put in it.
    public mutating func giveBack() {
        nextAvailable &-= 1
    }

    private mutating func take(upTo limit: Int, _ memory: GuestMemory) throws(VirtqueueError) -> [DescriptorChain] {
        guard ready else { return [] }
        let count = UInt64(size)
        let ring = try resolve(availableRing, 6 + 2 * count, memory, "available ring")
        let table = try resolve(descriptorTable, Self.descriptorSize * count, memory, "descriptor table")
        let available = UInt16(littleEndian: ring.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let pending = available &- nextAvailable
        guard pending <= size else {
            throw VirtqueueError("available index \(available) is \(pending) ahead of the device's \(nextAvailable), more than the queue's \(size)")
        }
        // The driver wrote the ring slots before the index (it runs on another CPU): read them after.
        atomicMemoryFence(ordering: .acquiring)
        var chains: [DescriptorChain] = []
        chains.reserveCapacity(min(Int(pending), limit))
        for _ in 0..<min(Int(pending), limit) {
            let slot = Int(nextAvailable % size)
            let head = UInt16(littleEndian: ring.loadUnaligned(fromByteOffset: 4 + 2 * slot, as: UInt16.self))
            chains.append(try chain(from: head, table: table, memory))
            nextAvailable &+= 1
        }
        return chains
    }

    /// One descriptor as the driver wrote it (2.7.5).
    struct Descriptor {
        var address: UInt64, length: UInt32, flags: UInt16, next: UInt16
        init(_ table: UnsafeMutableRawPointer, _ index: UInt64) {
            let entry = table + Int(index * Virtqueue.descriptorSize)
            address = UInt64(littleEndian: entry.loadUnaligned(as: UInt64.self))
            length = UInt32(littleEndian: entry.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
            flags = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
            next = UInt16(littleEndian: entry.loadUnaligned(fromByteOffset: 14, as: UInt16.self))
        }
    }

    /// The descriptors of the chain at `head` (the queue's table resolved at `queueTable`),
    /// through an indirect table if it has one.
    func chain(from head: UInt16, table queueTable: UnsafeMutableRawPointer, _ memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain {
        guard head < size else { throw VirtqueueError("chain head \(head) is outside the queue of \(size)") }
        var buffers: [VirtqueueBuffer] = []
        var index = head
        var total: UInt64 = 0
        var sawWritable = false
        // Where descriptors are read from: the queue's table, or (once) an indirect one.
        var table = queueTable, tableSize = UInt64(size), indirect = false
        var walked: UInt64 = 0
        while true {
            guard walked < tableSize else {
                throw VirtqueueError("the chain at \(head) is longer than its table (\(tableSize)): a loop")
            }
            walked += 1
            let descriptor = Descriptor(table, UInt64(index))
            let kind = indirect ? "indirect descriptor" : "descriptor"
            if descriptor.flags & Self.flagIndirect != 0 {
                guard indirectDescriptors else { throw VirtqueueError("descriptor \(index) is indirect, which the driver did not accept") }
                guard !indirect else { throw VirtqueueError("indirect descriptor \(index) inside an indirect table") }
                guard descriptor.flags & Self.flagNext == 0 else { throw VirtqueueError("descriptor \(index) is indirect and has a next") }
                let length = UInt64(descriptor.length), count = length / Self.descriptorSize
                guard length % Self.descriptorSize == 0, count >= 1, count <= Self.maximumIndirect else {
                    throw VirtqueueError("descriptor \(index): an indirect table of \(length) bytes (whole 16-byte descriptors, 1 to \(Self.maximumIndirect))")
                }
                guard descriptor.address % 16 == 0, let host = try? memory.hostPointer(GuestAddress(descriptor.address), length: Int(length)) else {
                    throw VirtqueueError("descriptor \(index): an indirect table at \(GuestAddress(descriptor.address)) (\(length) bytes) not aligned or outside guest RAM")
                }
                table = host
                tableSize = count
                indirect = true
                walked = 0
                index = 0
                continue
            }
            let writable = descriptor.flags & Self.flagWrite != 0
            guard writable || !sawWritable else { throw VirtqueueError("\(kind) \(index): a readable buffer after a writable one") }
            sawWritable = sawWritable || writable
            total += UInt64(descriptor.length)
            guard total < 1 << 32 else { throw VirtqueueError("the chain at \(head) is 4 GiB or more") }
            buffers.append(VirtqueueBuffer(address: GuestAddress(descriptor.address), length: descriptor.length, writable: writable))
            guard descriptor.flags & Self.flagNext != 0 else { break }
            guard UInt64(descriptor.next) < tableSize else {
                throw VirtqueueError("\(kind) \(index) points to \(descriptor.next), outside its table of \(tableSize)")
            }
            index = descriptor.next
        }
        return DescriptorChain(head: head, buffers: buffers)
    }

    /// Returns chain `head` to the driver with `length` bytes written into it.
    public mutating func putUsed(head: UInt16, length: UInt32, _ memory: GuestMemory) throws(VirtqueueError) {
        let ring = try resolve(usedRing, 6 + 8 * UInt64(size), memory, "used ring")
        let slot = Int(nextUsed % size)
        ring.storeBytes(of: UInt32(head).littleEndian, toByteOffset: 4 + 8 * slot, as: UInt32.self)
        ring.storeBytes(of: length.littleEndian, toByteOffset: 8 + 8 * slot, as: UInt32.self)
        nextUsed &+= 1
        // The index last: the driver (on another CPU) must never see a slot before its contents.
        atomicMemoryFence(ordering: .releasing)
        ring.storeBytes(of: nextUsed.littleEndian, toByteOffset: 2, as: UInt16.self)
    }

    /// The host address of a ring or table the driver placed (`validate` checked it lies in RAM).
    private func resolve(_ address: GuestAddress, _ length: UInt64, _ memory: GuestMemory, _ what: StaticString) throws(VirtqueueError) -> UnsafeMutableRawPointer {
        do { return try memory.hostPointer(address, length: Int(length)) } catch { throw VirtqueueError("\(what) at \(address) (\(length) bytes): outside guest RAM") }
    }
}
