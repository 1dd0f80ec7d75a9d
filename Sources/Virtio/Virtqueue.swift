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
/// - indirect descriptors are not offered, so a descriptor that asks for one is an error.
///
/// Buffers are only described here; a device reads and writes them through `GuestMemory`, which
/// refuses any range outside RAM.
public struct Virtqueue: Sendable {
    /// The largest queue a device offers (QueueNumMax): QEMU's and Firecracker's default.
    public static let maximumSize: UInt16 = 256

    public var size: UInt16 = maximumSize
    public var ready = false
    public var descriptorTable = GuestAddress(0)
    public var availableRing = GuestAddress(0)
    public var usedRing = GuestAddress(0)
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
    public mutating func reset() {
        self = Virtqueue()
    }

    /// The chains the driver made available since the last call, in order. An error leaves the
    /// queue unusable until the driver resets it.
    public mutating func takeAvailable(_ memory: GuestMemory) throws(VirtqueueError) -> [DescriptorChain] {
        guard ready else { return [] }
        let available = try read(UInt16.self, at: availableRing + 2, memory, "the available ring's index")
        let pending = available &- nextAvailable
        guard pending <= size else {
            throw VirtqueueError("available index \(available) is \(pending) ahead of the device's \(nextAvailable), more than the queue's \(size)")
        }
        // The driver wrote the ring slots before the index (it runs on another CPU): read them after.
        atomicMemoryFence(ordering: .acquiring)
        var chains: [DescriptorChain] = []
        chains.reserveCapacity(Int(pending))
        for _ in 0..<pending {
            let slot = UInt64(nextAvailable % size)
            let head = try read(UInt16.self, at: availableRing + 4 + 2 * slot, memory, "available ring slot \(slot)")
            chains.append(try chain(from: head, memory))
            nextAvailable &+= 1
        }
        return chains
    }

    /// The descriptors of the chain at `head`.
    func chain(from head: UInt16, _ memory: GuestMemory) throws(VirtqueueError) -> DescriptorChain {
        guard head < size else { throw VirtqueueError("chain head \(head) is outside the queue of \(size)") }
        var buffers: [VirtqueueBuffer] = []
        var index = head
        var total: UInt64 = 0
        var sawWritable = false
        while true {
            guard buffers.count < Int(size) else {
                throw VirtqueueError("the chain at \(head) is longer than the queue (\(size)): a loop")
            }
            let entry = descriptorTable + Self.descriptorSize * UInt64(index)
            let address = try read(UInt64.self, at: entry, memory, "descriptor \(index)")
            let length = try read(UInt32.self, at: entry + 8, memory, "descriptor \(index)")
            let flags = try read(UInt16.self, at: entry + 12, memory, "descriptor \(index)")
            let next = try read(UInt16.self, at: entry + 14, memory, "descriptor \(index)")
            guard flags & Self.flagIndirect == 0 else { throw VirtqueueError("descriptor \(index) is indirect, which the device did not offer") }
            let writable = flags & Self.flagWrite != 0
            guard writable || !sawWritable else { throw VirtqueueError("descriptor \(index): a readable buffer after a writable one") }
            sawWritable = sawWritable || writable
            total += UInt64(length)
            guard total < 1 << 32 else { throw VirtqueueError("the chain at \(head) is 4 GiB or more") }
            buffers.append(VirtqueueBuffer(address: GuestAddress(address), length: length, writable: writable))
            guard flags & Self.flagNext != 0 else { break }
            guard next < size else { throw VirtqueueError("descriptor \(index) points to \(next), outside the queue of \(size)") }
            index = next
        }
        return DescriptorChain(head: head, buffers: buffers)
    }

    /// Returns chain `head` to the driver with `length` bytes written into it.
    public mutating func putUsed(head: UInt16, length: UInt32, _ memory: GuestMemory) throws(VirtqueueError) {
        let slot = UInt64(nextUsed % size)
        try write(UInt32(head), at: usedRing + 4 + 8 * slot, memory, "used ring slot \(slot)")
        try write(length, at: usedRing + 8 + 8 * slot, memory, "used ring slot \(slot)")
        nextUsed &+= 1
        // The index last: the driver (on another CPU) must never see a slot before its contents.
        atomicMemoryFence(ordering: .releasing)
        try write(nextUsed, at: usedRing + 2, memory, "the used ring's index")
    }

    private func read<T: FixedWidthInteger>(_ type: T.Type, at address: GuestAddress, _ memory: GuestMemory, _ what: String) throws(VirtqueueError) -> T {
        do { return try memory.read(type, at: address) } catch { throw VirtqueueError("\(what) at \(address): outside guest RAM") }
    }

    private func write<T: FixedWidthInteger>(_ value: T, at address: GuestAddress, _ memory: GuestMemory, _ what: String) throws(VirtqueueError) {
        do { try memory.write(value, at: address) } catch { throw VirtqueueError("\(what) at \(address): outside guest RAM") }
    }
}
