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
}

/// virtio-mmio, version 2 ("modern", virtio 1.x 4.2): the register file the guest driver programs
/// at the device's MMIO window. Its interrupt is a level-triggered line (`Devices.InterruptLine`,
/// KVM_IRQ_LINE in the VMM, as for the UART): high while InterruptStatus has a bit set, low once
/// the driver has acknowledged them all. Queue notifications are served at once, on the caller's thread
/// (the vCPU's, today; issue 16 asks for ioeventfd and a device thread). Whatever the driver
/// writes, the transport stays consistent: a queue set up wrong, a notification before DRIVER_OK or
/// a chain that breaks the rules sets DEVICE_NEEDS_RESET and raises a configuration interrupt,
/// and the device does nothing more until the driver resets it (writes 0 to Status).
public final class MMIOTransport: BusDevice, @unchecked Sendable {
    public static let magic: UInt32 = 0x7472_6976  // "virt"
    public static let version: UInt32 = 2
    /// "TNDM": Tandem as the vendor (QEMU uses "QEMU", Firecracker 0).
    public static let vendorID: UInt32 = 0x4d44_4e54
    /// The window one device takes (the spec's register block plus configuration space).
    public static let windowSize: UInt64 = 0x200
    public static let featureVersion1: UInt64 = 1 << 32

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
    let interrupt: InterruptLine
    private let lock = Lock()
    public private(set) var status: UInt32 = 0
    private var deviceFeaturesSelect: UInt32 = 0
    private var driverFeaturesSelect: UInt32 = 0
    public private(set) var driverFeatures: UInt64 = 0
    private var queueSelect: UInt32 = 0
    public private(set) var queues: [Virtqueue]
    public private(set) var interruptStatus: UInt32 = 0
    /// Why the device stopped (DEVICE_NEEDS_RESET), for the VMM's log; nil while it works.
    public private(set) var failure: String?

    public init(device: VirtioDevice, memory: GuestMemory, interrupt: InterruptLine) {
        self.device = device
        self.memory = memory
        self.interrupt = interrupt
        queues = Array(repeating: Virtqueue(), count: device.queueCount)
    }

    var offeredFeatures: UInt64 { device.features | Self.featureVersion1 }

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

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        lock.withLock {
            guard offset < UInt64(Register.config), data.count == 4 else { return }  // the config space is read-only here
            let value = data.loadUnaligned(as: UInt32.self)
            switch Int(offset) {
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
            case Register.queueNotify: notify(queue: Int(value))
            case Register.interruptACK:
                interruptStatus &= ~value
                interrupt.set(high: interruptStatus != 0)
            case Register.status: setStatus(value)
            default: break
            }
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
            interrupt.set(high: false)
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
        status = value & ~Status.needsReset | status & Status.needsReset
    }

    private func notify(queue index: Int) {
        guard index < queues.count else { return }
        guard status & Status.needsReset == 0 else { return }
        guard status & Status.driverOK != 0 else { return stop("queue \(index) notified before DRIVER_OK") }
        guard queues[index].ready else { return }
        do throws(VirtqueueError) {
            var served = false
            for chain in try queues[index].takeAvailable(memory) {
                let written = try device.handle(chain, queue: index, memory: memory)
                try queues[index].putUsed(head: chain.head, length: written, memory)
                served = true
            }
            if served {
                interruptStatus |= Self.interruptUsed
                interrupt.set(high: true)
            }
        } catch {
            stop("queue \(index): \(error.description)")
        }
    }

    /// DEVICE_NEEDS_RESET and a configuration interrupt (virtio 1.x 2.1.2).
    private func stop(_ reason: String) {
        failure = reason
        status |= Status.needsReset
        interruptStatus |= Self.interruptConfig
        interrupt.set(high: true)
    }

    private func fill(_ data: UnsafeMutableRawBufferPointer, _ value: UInt32) {
        for index in 0..<data.count { data[index] = index < 4 ? UInt8(truncatingIfNeeded: value >> (8 * UInt32(index))) : 0 }
    }
}
