import Devices
import GuestMemory
import HostOS

/// A virtio device model behind a transport: its type, features, configuration space, queues and
/// what it does with a chain. It sees guest memory (through `GuestMemory`, which refuses ranges
/// outside RAM) and never KVM.
public protocol VirtioDevice: AnyObject {
    /// The virtio device ID (5 Device Types: 2 block, 1 network, 19 vsock).
    var deviceID: UInt32 { get }
    /// Feature bits offered (VIRTIO_F_VERSION_1, bit 32, is added by the transport).
    var features: UInt64 { get }
    /// How many queues it has.
    var queueCount: Int { get }
    /// Its configuration space, as the driver reads it from offset 0x100.
    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer)
    /// Serves `chain` from queue `queue`; returns the bytes written into the chain's writable
    /// buffers. A broken request is the device's to answer (an error status in the request); a
    /// throw means the driver broke the rules and the device needs a reset.
    func handle(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) throws(VirtqueueError) -> UInt32
    /// The driver reset the device.
    func reset()
    /// The driver set DRIVER_OK having accepted `features` (a device that tells the host what the
    /// driver takes — a tap's offloads — does it here). Called under the transport's locks.
    func activate(features: UInt64)
    /// The driver notified `queue`. True: the transport serves its chains with `handle`. A
    /// device whose queue is filled from the host side (a network receive queue) does its own
    /// work here and answers false.
    func notified(queue: Int) -> Bool
}

extension VirtioDevice {
    public func notified(queue: Int) -> Bool { true }
    public func activate(features: UInt64) {}
}

/// virtio-mmio, version 2 ("modern", virtio 1.x 4.2): the register file the guest driver programs
/// at the device's MMIO window. Its interrupt is edge-triggered (`Devices.InterruptTrigger`, an
/// irqfd in the VMM, as Firecracker's): one edge each time InterruptStatus gains a bit; the driver
/// reads InterruptStatus and acknowledges what it saw, and a later completion sends a new edge.
///
/// Queue work runs on whichever thread calls `serve(queue:)`: in the VMM the device thread, woken
/// by the queue's ioeventfd (the guest's QueueNotify write never leaves the kernel); a QueueNotify
/// that does reach `write` (no ioeventfd: tests, an index with no queue) is served on the caller's
/// thread. Two locks keep a vCPU from waiting on the device's I/O: `registers` guards the register
/// file and is held only briefly; `service` is held for a whole pass over a queue, which works on
/// a copy of the queue's state. Only what can pull a queue from under that pass — a reset (Status
/// 0) and QueueReady — takes `service` too (always `service` before `registers`), so it waits for
/// the pass to end and the device never touches a queue after the driver took it back.
///
/// Whatever the driver writes, the transport stays consistent: a queue set up wrong, a notification
/// before DRIVER_OK or a chain that breaks the rules sets DEVICE_NEEDS_RESET and raises a
/// configuration interrupt, and the device does nothing more until the driver resets it.
public final class MMIOTransport: BusDevice, SnapshotDevice, @unchecked Sendable {
    public static let magic: UInt32 = 0x7472_6976  // "virt"
    public static let version: UInt32 = 2
    /// "TNDM": Tandem as the vendor (QEMU uses "QEMU", Firecracker 0).
    public static let vendorID: UInt32 = 0x4d44_4e54
    /// The window one device takes (the spec's register block plus configuration space).
    public static let windowSize: UInt64 = 0x200
    public static let featureVersion1: UInt64 = 1 << 32
    /// VIRTIO_RING_F_INDIRECT_DESC: a request may sit in one ring slot, its descriptors in a table
    /// of their own (a 1 MiB block request takes 256 descriptors: without it, one fills the queue).
    public static let featureIndirectDescriptors: UInt64 = 1 << 28
    /// QueueNotify's offset: where the VMM places each queue's ioeventfd.
    public static let queueNotifyOffset = UInt64(Register.queueNotify)

    /// Registers (virtio 1.x, 4.2.2), by offset.
    enum Register {
        static let magic = 0x000, version = 0x004, deviceID = 0x008, vendorID = 0x00c
        static let deviceFeatures = 0x010, deviceFeaturesSel = 0x014, driverFeatures = 0x020, driverFeaturesSel = 0x024
        static let queueSel = 0x030, queueNumMax = 0x034, queueNum = 0x038, queueReady = 0x044, queueNotify = 0x050
        static let interruptStatus = 0x060, interruptACK = 0x064, status = 0x070
        static let queueDescLow = 0x080, queueDescHigh = 0x084, queueDriverLow = 0x090, queueDriverHigh = 0x094
        static let queueDeviceLow = 0x0a0, queueDeviceHigh = 0x0a4, configGeneration = 0x0fc, config = 0x100
    }

    /// Device status bits (2.1).
    public enum Status {
        public static let acknowledge: UInt32 = 1, driver: UInt32 = 2, driverOK: UInt32 = 4, featuresOK: UInt32 = 8
        public static let needsReset: UInt32 = 64, failed: UInt32 = 128
    }
    /// InterruptStatus bits: a used buffer, a configuration change.
    public static let interruptUsed: UInt32 = 1, interruptConfig: UInt32 = 2

    public let device: VirtioDevice
    let memory: GuestMemory
    let interrupt: InterruptTrigger
    /// Guards the register file, the queues' state and InterruptStatus; never held during I/O.
    private let lock = Lock()
    /// Held by a pass over a queue, and by the writes that take queues back (reset, QueueReady).
    private let service = Lock()
    public private(set) var status: UInt32 = 0
    private var deviceFeaturesSelect: UInt32 = 0
    private var driverFeaturesSelect: UInt32 = 0
    public private(set) var driverFeatures: UInt64 = 0
    private var queueSelect: UInt32 = 0
    public private(set) var queues: [Virtqueue]
    public private(set) var interruptStatus: UInt32 = 0
    /// Why the device stopped (DEVICE_NEEDS_RESET), for the VMM's log; nil while it works.
    public private(set) var failure: String?
    /// Chains completed, and QueueNotify writes that reached `write` (a VMM exit each: with the
    /// queue's ioeventfd in place there are none). For the run report.
    public private(set) var completedRequests: UInt64 = 0
    public private(set) var notifyExits: UInt64 = 0

    public init(device: VirtioDevice, memory: GuestMemory, interrupt: InterruptTrigger) {
        self.device = device
        self.memory = memory
        self.interrupt = interrupt
        queues = Array(repeating: Virtqueue(), count: device.queueCount)
    }

    var offeredFeatures: UInt64 { device.features | Self.featureVersion1 | Self.featureIndirectDescriptors }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        lock.withLock {
            let offset = Int(offset)
            if offset >= Register.config {
                device.readConfig(offset: offset - Register.config, into: data)
                return
            }
            // Registers are 32 bits wide; other widths read as 0 (the spec forbids them).
            guard data.count == 4 else { return fill(data, 0) }
            let value: UInt32 = switch offset {
            case Register.magic: Self.magic
            case Register.version: Self.version
            case Register.deviceID: device.deviceID
            case Register.vendorID: Self.vendorID
            case Register.deviceFeatures: deviceFeaturesSelect < 2 ? UInt32(truncatingIfNeeded: offeredFeatures >> (32 * UInt64(deviceFeaturesSelect))) : 0
            case Register.queueNumMax: selectedQueue == nil ? 0 : UInt32(Virtqueue.maximumSize)
            case Register.queueReady: selectedQueue.map { queues[$0].ready ? 1 : 0 } ?? 0
            case Register.interruptStatus: interruptStatus
            case Register.status: status
            case Register.configGeneration: 0
            default: 0
            }
            fill(data, value)
        }
    }

    /// QueueNotify is served outside the register lock (`serve` takes the locks itself); Status and
    /// QueueReady wait for a pass in progress; every other register is a short update.
    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard offset < UInt64(Register.config), data.count == 4 else { return }  // the config space is read-only here
        let value = data.loadUnaligned(as: UInt32.self)
        switch Int(offset) {
        case Register.queueNotify:
            lock.withLock { notifyExits += 1 }
            serve(queue: Int(value))
        case Register.status, Register.queueReady: service.withLock { lock.withLock { writeRegister(Int(offset), value) } }
        default: lock.withLock { writeRegister(Int(offset), value) }
        }
    }

    private func writeRegister(_ offset: Int, _ value: UInt32) {
        switch offset {
        case Register.deviceFeaturesSel: deviceFeaturesSelect = value
        case Register.driverFeaturesSel: driverFeaturesSelect = value
        case Register.driverFeatures:
            guard driverFeaturesSelect < 2, status & Status.featuresOK == 0 else { return }
            let shift = 32 * UInt64(driverFeaturesSelect)
            driverFeatures = driverFeatures & ~(0xffff_ffff << shift) | UInt64(value) << shift
        case Register.queueSel: queueSelect = value
        case Register.queueNum: updateQueue { $0.size = UInt16(truncatingIfNeeded: min(value, 0xffff)) }
        case Register.queueDescLow: updateQueue { $0.descriptorTable.value = $0.descriptorTable.value & ~0xffff_ffff | UInt64(value) }
        case Register.queueDescHigh: updateQueue { $0.descriptorTable.value = $0.descriptorTable.value & 0xffff_ffff | UInt64(value) << 32 }
        case Register.queueDriverLow: updateQueue { $0.availableRing.value = $0.availableRing.value & ~0xffff_ffff | UInt64(value) }
        case Register.queueDriverHigh: updateQueue { $0.availableRing.value = $0.availableRing.value & 0xffff_ffff | UInt64(value) << 32 }
        case Register.queueDeviceLow: updateQueue { $0.usedRing.value = $0.usedRing.value & ~0xffff_ffff | UInt64(value) }
        case Register.queueDeviceHigh: updateQueue { $0.usedRing.value = $0.usedRing.value & 0xffff_ffff | UInt64(value) << 32 }
        case Register.queueReady: setQueueReady(value == 1)
        case Register.interruptACK: interruptStatus &= ~value
        case Register.status: setStatus(value)
        default: break
        }
    }

    private var selectedQueue: Int? { Int(queueSelect) < queues.count ? Int(queueSelect) : nil }

    /// A queue's registers change only while it is not ready (4.2.2: "the driver MUST NOT" write
    /// them otherwise); other writes are ignored.
    private func updateQueue(_ change: (inout Virtqueue) -> Void) {
        guard let index = selectedQueue, !queues[index].ready else { return }
        change(&queues[index])
    }

    private func setQueueReady(_ ready: Bool) {
        guard let index = selectedQueue else { return }
        if !ready { queues[index].ready = false; return }
        do throws(VirtqueueError) {
            try queues[index].validate(memory)
            queues[index].indirectDescriptors = driverFeatures & Self.featureIndirectDescriptors != 0
            queues[index].ready = true
        } catch {
            stop("queue \(index): \(error.description)")
        }
    }

    private func setStatus(_ value: UInt32) {
        if value == 0 {
            // Reset: everything the driver set up goes, the device included.
            status = 0
            driverFeatures = 0
            interruptStatus = 0
            failure = nil
            for index in queues.indices { queues[index].reset() }
            device.reset()
            return
        }
        var value = value
        if value & Status.featuresOK != 0 && status & Status.featuresOK == 0 {
            // FEATURES_OK stays set only for a subset of what was offered, VERSION_1 included.
            if driverFeatures & ~offeredFeatures != 0 || driverFeatures & Self.featureVersion1 == 0 { value &= ~Status.featuresOK }
        }
        // NEEDS_RESET is the device's to set, not the driver's.
        let starting = value & Status.driverOK != 0 && status & Status.driverOK == 0
        status = value & ~Status.needsReset | status & Status.needsReset
        if starting { device.activate(features: driverFeatures) }
    }

    /// Serves what the driver made available on queue `index` (its notification): every chain goes
    /// to the device, back on the used ring, and one used-buffer interrupt follows the pass. The
    /// device's I/O runs under `service` only, on a copy of the queue, so the vCPUs keep reading
    /// and writing registers meanwhile. An index with no queue is ignored, as the spec allows.
    public func serve(queue index: Int) {
        // Before any lock: a device that fills this queue itself takes the locks through `deliver`.
        guard device.notified(queue: index) else { return }
        pass(queue: index, notified: true) { (queue: inout Virtqueue) throws(VirtqueueError) -> UInt64 in
            var served: UInt64 = 0
            for chain in try queue.takeAvailable(memory) {
                let written = try device.handle(chain, queue: index, memory: memory)
                try queue.putUsed(head: chain.head, length: written, memory)
                served += 1
            }
            return served
        }
    }

    /// After a restore, before the guest runs: what the driver made available and the device had
    /// not taken (its notification went to the old VM's ioeventfd) is served now. Only on a running
    /// device: one the driver never started has nothing queued, and serving it would count as a
    /// notification before DRIVER_OK.
    public func serveQueuedAfterRestore() {
        guard lock.withLock({ status & Status.driverOK != 0 && status & Status.needsReset == 0 }) else { return }
        for index in 0..<queues.count { serve(queue: index) }
    }

    /// Fills the next buffer the driver made available on queue `index` with `fill` (which
    /// returns the bytes it wrote), returns it used and interrupts: for work that starts on the
    /// host side, as a frame arriving for a network device's receive queue. False when the queue
    /// has no buffer (nothing is taken: the caller keeps its data until the driver adds some) or
    /// the device is not running.
    public func deliver(queue index: Int, _ fill: (DescriptorChain) throws(VirtqueueError) -> UInt32) -> Bool {
        process(queue: index, upTo: 1) { (chain: DescriptorChain) throws(VirtqueueError) -> UInt32? in try fill(chain) } > 0
    }

    /// Hands the chains the driver made available on queue `index` to `work`, one at a time, in one
    /// pass with one interrupt: `work` returns the bytes it wrote into the chain (which then goes
    /// back used), or nil when it has nothing for it (the chain stays available, untouched, and the
    /// pass ends). At most `limit` chains. For a device that paces a queue itself: vsock fills its
    /// receive queue while it has packets, and takes from its transmit queue only as many packets
    /// as it has room to answer. Returns the chains used (0 when the device is not running).
    public func process(queue index: Int, upTo limit: Int, _ work: (DescriptorChain) throws(VirtqueueError) -> UInt32?) -> Int {
        Int(pass(queue: index, notified: false) { (queue: inout Virtqueue) throws(VirtqueueError) -> UInt64 in
            var used: UInt64 = 0
            while used < UInt64(max(limit, 0)), let chain = try queue.takeNext(memory) {
                guard let written = try work(chain) else {
                    queue.giveBack()
                    break
                }
                try queue.putUsed(head: chain.head, length: written, memory)
                used += 1
            }
            return used
        })
    }

    /// One pass over queue `index` by `work` (which returns the chains it completed), under
    /// `service`, on a copy of the queue written back after; a broken rule stops the device, and
    /// completed chains raise one used-buffer interrupt. A guest's notification (`notified`)
    /// before DRIVER_OK breaks the rules; the host's own work then simply waits.
    @discardableResult
    private func pass(queue index: Int, notified: Bool, _ work: (inout Virtqueue) throws(VirtqueueError) -> UInt64) -> UInt64 {
        service.withLock {
            let start: Virtqueue? = lock.withLock {
                guard index >= 0, index < queues.count, status & Status.needsReset == 0 else { return nil }
                guard status & Status.driverOK != 0 else {
                    if notified { stop("queue \(index) notified before DRIVER_OK") }
                    return nil
                }
                return queues[index].ready ? queues[index] : nil
            }
            guard var queue = start else { return 0 }
            var completed: UInt64 = 0
            var broken: VirtqueueError?
            do throws(VirtqueueError) { completed = try work(&queue) } catch { broken = error }
            lock.withLock {
                queues[index] = queue
                completedRequests += completed
                if let broken { return stop("queue \(index): \(broken.description)") }
                if completed > 0 {
                    interruptStatus |= Self.interruptUsed
                    interrupt.trigger()
                }
            }
            return broken == nil ? completed : 0
        }
    }

    // MARK: - Snapshots

    static let stateVersion: UInt8 = 1

    /// Runs `body` with no pass over any queue in progress and none starting (the device thread
    /// waits): what a snapshot reads — the queues' state and the guest memory the device writes —
    /// holds still.
    public func quiesced<T>(_ body: () throws -> T) rethrows -> T {
        try service.withLock { try body() }
    }

    /// The transport's registers and each queue's setup and position, little-endian: version,
    /// status, the feature selectors, the driver's features, QueueSel, InterruptStatus, the queue
    /// count, then per queue its size, ready and indirect flags, the three ring addresses and the
    /// next available and used indices. (The device behind it keeps no state of its own: a disk
    /// is its file.)
    public func savedState() -> [UInt8] {
        lock.withLock {
            var out: [UInt8] = [Self.stateVersion]
            func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
            func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
            func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
            u32(status); u32(deviceFeaturesSelect); u32(driverFeaturesSelect); u64(driverFeatures); u32(queueSelect); u32(interruptStatus)
            u32(UInt32(queues.count))
            for queue in queues {
                u16(queue.size)
                out.append((queue.ready ? 1 : 0) | (queue.indirectDescriptors ? 2 : 0))
                u64(queue.descriptorTable.value); u64(queue.availableRing.value); u64(queue.usedRing.value)
                u16(queue.nextAvailable); u16(queue.nextUsed)
            }
            return out
        }
    }

    /// Takes back `savedState()`'s bytes before the guest runs: every ready queue is validated
    /// against guest RAM as when the driver made it ready, and a running device is activated
    /// with the driver's features.
    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        var position = 0
        func take(_ count: Int) throws(DeviceStateError) -> UInt64 {
            guard position + count <= bytes.count else { throw DeviceStateError("virtio-mmio: state truncated at byte \(position) of \(bytes.count)") }
            var value: UInt64 = 0
            for index in 0..<count { value |= UInt64(bytes[position + index]) << (8 * index) }
            position += count
            return value
        }
        guard bytes.first == Self.stateVersion else { throw DeviceStateError("virtio-mmio: state version \(bytes.first ?? 0), expected \(Self.stateVersion)") }
        position = 1
        let savedStatus = UInt32(try take(4)), deviceSelect = UInt32(try take(4)), driverSelect = UInt32(try take(4))
        let features = try take(8), select = UInt32(try take(4)), pending = UInt32(try take(4))
        let count = Int(try take(4))
        guard count == queues.count else { throw DeviceStateError("virtio-mmio: \(count) queues saved, the device has \(queues.count)") }
        var restored: [Virtqueue] = []
        for index in 0..<count {
            var queue = Virtqueue()
            queue.size = UInt16(try take(2))
            let flags = try take(1)
            queue.descriptorTable = GuestAddress(try take(8))
            queue.availableRing = GuestAddress(try take(8))
            queue.usedRing = GuestAddress(try take(8))
            queue.restoreIndices(nextAvailable: UInt16(try take(2)), nextUsed: UInt16(try take(2)))
            queue.indirectDescriptors = flags & 2 != 0
            if flags & 1 != 0 {
                do throws(VirtqueueError) { try queue.validate(memory) } catch { throw DeviceStateError("virtio-mmio queue \(index): \(error.description)") }
                queue.ready = true
            }
            restored.append(queue)
        }
        guard position == bytes.count else { throw DeviceStateError("virtio-mmio: \(bytes.count - position) bytes after the last queue") }
        guard features & ~offeredFeatures == 0 else { throw DeviceStateError("virtio-mmio: the driver's features 0x\(String(features, radix: 16)) are not all offered") }
        lock.withLock {
            status = savedStatus
            deviceFeaturesSelect = deviceSelect
            driverFeaturesSelect = driverSelect
            driverFeatures = features
            queueSelect = select
            interruptStatus = pending
            queues = restored
        }
        if savedStatus & Status.driverOK != 0 { device.activate(features: features) }
    }

    /// DEVICE_NEEDS_RESET and a configuration interrupt (virtio 1.x 2.1.2). Called under `lock`.
    private func stop(_ reason: String) {
        failure = reason
        status |= Status.needsReset
        interruptStatus |= Self.interruptConfig
        interrupt.trigger()
    }

    private func fill(_ data: UnsafeMutableRawBufferPointer, _ value: UInt32) {
        for index in 0..<data.count { data[index] = index < 4 ? UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) : 0 }
    }
}
