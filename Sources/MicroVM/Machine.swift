import BootLoader
import CKVM
import Devices
import Virtio
import GuestABI
import GuestMemory
import HostOS
import KVM
#if canImport(Glibc)
import Glibc
#endif

/// One microVM: KVM VM, guest RAM, buses and devices, vCPU threads. `Machine.build` reads as the
/// boot script (what Firecracker's builder does); `run` drives it to an outcome. Every resource is
/// owned by an object that releases it, so a failure half-way leaves nothing behind.
public final class Machine: @unchecked Sendable {
    public internal(set) var config: VMConfig
    let vm: VirtualMachine
    let memory: GuestMemory
    let portBus = Bus()
    let mmioBus = Bus()
    let vcpus: [VCPU]
    public let console: FileConsoleSink
    let stop: StopState
    var phases: PhaseTimes
    /// COM1, which receives the console input.
    var serial: Serial8250?
    /// Serves the virtio queues (started by `run`, stopped after the vCPUs).
    var deviceThread: DeviceThread?
    /// Image copies left for `run` to finish while the guest starts (a Linux initrd).
    var pendingCopies: [PendingCopy] = []
    /// The snapshot directory this machine was restored from (nil: it booted).
    public internal(set) var restoredFrom: String?

    /// Where KVM may put the three pages Intel VMX needs for real-mode emulation: just below the
    /// 4 GiB boundary, outside any RAM a guest is given (QEMU and Firecracker use the same address).
    public static let tssAddress: UInt64 = 0xfffb_d000

    /// Builds the VM described by `config`: KVM, RAM, devices, image, registers. Nothing runs yet.
    public static func build(_ config: VMConfig, console: FileConsoleSink, processStart: UInt64? = nil,
                             kvmPath: String = KVMSystem.defaultPath) throws(MicroVMError) -> Machine {
        var phases = PhaseTimes(processStart: processStart)
        let memoryBytes = try validatedMemory(config)
        do {
            // A Linux guest touches tens of MiB at once (kernel, initrd, its own page tables):
            // transparent huge pages make that a few faults instead of thousands.
            let memory = try GuestMemory(ranges: ramRanges(memoryBytes), hugePages: config.isLinux)
            // Linux images are copied into RAM on a second thread while this one sets up KVM
            // (the two are independent until the vCPU registers point at the kernel); the
            // initrd's copy is left for `run` to finish while the guest starts (`PendingCopy`).
            let imageLoad = try LinuxImageLoad.start(config, into: memory)
            defer { _ = try? imageLoad?.wait() }
            let system = try KVMSystem(path: kvmPath)
            let vm = try system.createVM()
            try vm.setTSSAddress(tssAddress)
            // Guest RAM before the interrupt controllers, as Firecracker does: on this host a
            // memory slot added after KVM_CREATE_IRQCHIP and KVM_CREATE_PIT2 waited ~4.8 ms for
            // the kernel (an SRCU grace period), before them 0.07–0.4 ms (measured bare, 20 runs).
            for region in memory.regions {
                try vm.mapMemory(guestAddress: region.start.value, size: region.size, host: region.host)
            }
            if config.isLinux {
                // The PIC, IOAPIC, local APICs and PIT live in the kernel (before any vCPU exists).
                try vm.createIRQChip()
                try vm.createPIT()
            }
            var vcpus: [VCPU] = []
            for id in 0..<(config.isLinux ? config.vcpus : 1) { vcpus.append(try vm.createVCPU(id: id)) }
            phases.vmCreated = Clock.monotonicNanoseconds()
            let machine = Machine(config: config.withoutImages(), vm: vm, memory: memory, vcpus: vcpus, console: console,
                                  stop: try StopState(), phases: phases)
            try machine.attachDevices()
            if let imageLoad {
                let boot = try imageLoad.wait()
                machine.pendingCopies = boot.pendingCopies
                try machine.prepareLinux(boot)
            } else {
                try machine.loadBootSource(config.boot)
            }
            machine.phases.imageLoaded = Clock.monotonicNanoseconds()
            if machine.pendingCopies.isEmpty { machine.phases.imageComplete = machine.phases.imageLoaded }
            return machine
        } catch let error as KVMError {
            throw .kvm(error)
        } catch let error as GuestMemoryError {
            throw .memory(error)
        } catch let error as MicroVMError {
            throw error
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .system(SystemError("build", "\(error)", errno: EINVAL))
        }
    }

    init(config: VMConfig, vm: VirtualMachine, memory: GuestMemory, vcpus: [VCPU],
                 console: FileConsoleSink, stop: StopState, phases: PhaseTimes) {
        self.stop = stop
        self.config = config
        self.vm = vm
        self.memory = memory
        self.vcpus = vcpus
        self.console = console
        self.phases = phases
    }

    /// Guest RAM ranges: below the 32-bit MMIO hole, and the rest from 4 GiB up (as on a PC).
    static func ramRanges(_ bytes: Int) -> [(start: GuestAddress, size: Int)] {
        guard bytes > VMConfig.lowRAMLimit else { return [(GuestAddress(0), bytes)] }
        return [(GuestAddress(0), VMConfig.lowRAMLimit), (GuestAddress(1 << 32), bytes - VMConfig.lowRAMLimit)]
    }

    static func validatedMemory(_ config: VMConfig) throws(MicroVMError) -> Int {
        let requested = config.memoryMiB
        guard requested > 0 else { throw .invalidMemory(requestedMiB: requested, reason: "guest memory must be at least 1 MiB") }
        switch config.boot {
        case .linux:
            guard requested >= VMConfig.minimumLinuxMemoryMiB else {
                throw .invalidMemory(requestedMiB: requested, reason: "a Linux guest needs at least \(VMConfig.minimumLinuxMemoryMiB) MiB")
            }
            let hostCPUs = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            guard config.vcpus >= 1, config.vcpus <= hostCPUs else {
                throw .invalidVCPUs(requested: config.vcpus, reason: "must be between 1 and this host's \(hostCPUs) CPUs")
            }
        case .flat:
            guard config.vcpus == 1 else {
                throw .invalidVCPUs(requested: config.vcpus, reason: "a tiny guest runs on one vCPU (--vcpus is for Linux guests)")
            }
            guard requested >= VMConfig.minimumTinyMemoryMiB else {
                throw .invalidMemory(requestedMiB: requested, reason: "a tiny guest needs at least \(VMConfig.minimumTinyMemoryMiB) MiB")
            }
            guard requested <= VMConfig.maximumTinyMemoryMiB else {
                throw .invalidMemory(requestedMiB: requested,
                                     reason: "a tiny guest's RAM ends below the 32-bit MMIO hole: at most \(VMConfig.maximumTinyMemoryMiB) MiB")
            }
        }
        if let hostMiB = HostMemory.totalMiB(), requested > hostMiB {
            throw .invalidMemory(requestedMiB: requested, reason: "this host has only \(hostMiB) MiB of RAM")
        }
        return requested << 20
    }

    func attachDevices() throws(MicroVMError) {
        let interrupt: InterruptLine = config.isLinux ? KVMInterruptLine(vm: vm, gsi: UInt32(TANDEM_COM1_IRQ)) : DisconnectedInterruptLine()
        let serial = Serial8250(sink: console, interrupt: interrupt)
        self.serial = serial
        do {
            try portBus.register(serial, base: UInt64(TANDEM_COM1_BASE), length: 8, name: "serial 8250 (COM1)")
            try portBus.register(ControlPorts(delegate: stop), base: ControlPorts.base, length: ControlPorts.length,
                                 name: "tandem control ports")
            if config.isLinux {
                try portBus.register(I8042(reset: stop), base: I8042.dataPort, length: I8042.length, name: "i8042")
                try portBus.register(CMOS(), base: CMOS.base, length: CMOS.length, name: "cmos rtc")
            }
        } catch { throw .bus(error) }
        try attachVirtio()
    }

    /// Each drive as virtio-blk, each net as virtio-net and the vsock, on virtio-mmio slots in that order
    /// (named with absolute paths: a snapshot's devices are matched by name on restore, which
    /// gets the paths absolute):
    /// slot N at TANDEM_VIRTIO_MMIO_BASE + N * stride, GSI TANDEM_VIRTIO_IRQ_BASE + N. Disks are
    /// opened now (one that cannot be opened fails the build, before anything runs). Queue
    /// notifications are ioeventfds the device thread serves; interrupts are irqfds (none for a
    /// tiny guest: it polls).
    private func attachVirtio() throws(MicroVMError) {
        guard config.virtioSlots <= Int(TANDEM_VIRTIO_MMIO_MAX) else {
            throw .system(SystemError("--drive/--net/--vsock", "\(config.virtioSlots) devices: at most \(TANDEM_VIRTIO_MMIO_MAX)", errno: E2BIG))
        }
        var sources: [DeviceThread.Source] = [], events: [EventFD] = []
        do {
            var devices: [(VirtioDevice, String)] = []
            for (index, drive) in config.drives.enumerated() {
                devices.append((try VirtioBlock(path: drive.path, readOnly: drive.readOnly, serial: "tandem-\(index)"), "virtio-blk \(index) (\(Files.absolute(drive.path)))"))
            }
            for (index, net) in config.nets.enumerated() {
                devices.append((VirtioNet(tap: net.tap.fd, interfaceName: net.tap.name, mac: net.mac), "virtio-net \(index) (\(net.tap.name))"))
            }
            if let vsock = config.vsock { devices.append((vsock, "virtio-vsock (\(Files.absolute(vsock.path)))")) }
            for (slot, (device, name)) in devices.enumerated() {
                let base = UInt64(TANDEM_VIRTIO_MMIO_BASE) + UInt64(slot) * UInt64(TANDEM_VIRTIO_MMIO_STRIDE)
                var interrupt: InterruptTrigger = DisconnectedInterruptTrigger()
                if config.isLinux {
                    let event = try EventFD()
                    try vm.registerIRQFD(event.fd.rawValue, gsi: UInt32(TANDEM_VIRTIO_IRQ_BASE) + UInt32(slot))
                    interrupt = IRQFDTrigger(event)
                }
                let transport = MMIOTransport(device: device, memory: memory, interrupt: interrupt)
                for queue in 0..<device.queueCount {
                    let event = try EventFD()
                    try vm.registerIOEventFD(event.fd.rawValue, address: base + MMIOTransport.queueNotifyOffset, length: 4, value: UInt64(queue))
                    sources.append(DeviceThread.notifier(event, transport, queue: queue))
                    events.append(event)
                }
                if let net = device as? VirtioNet {
                    net.transport = transport
                    sources.append(DeviceThread.Source(fd: net.tapDescriptor, watched: { net.wantsFrames }, ready: { net.receive() }, isEventFD: false))
                }
                if let vsock = device as? VirtioVsock {
                    vsock.transport = transport
                    // Its host sockets sit behind one epoll descriptor: readable when any has news.
                    sources.append(DeviceThread.Source(fd: vsock.pollDescriptor, watched: { true }, ready: { vsock.process() }, isEventFD: false))
                }
                try mmioBus.register(transport, base: base, length: UInt64(TANDEM_VIRTIO_MMIO_STRIDE), name: name)
            }
        } catch let error as SystemError {
            throw .system(error)
        } catch let error as KVMError {
            throw .kvm(error)
        } catch let error as BusOverlapError {
            throw .bus(error)
        } catch {
            throw .system(SystemError("--drive/--net", "\(error)", errno: EINVAL))
        }
        // No device, no thread (a tiny guest's launch pays nothing for it).
        guard !sources.isEmpty else { return }
        do { deviceThread = try DeviceThread(sources: sources, events: events) } catch { throw .system(error) }
    }

    private func loadBootSource(_ boot: BootSource) throws(MicroVMError) {
        switch boot {
        case .flat(let image, let name, let mode, let argument):
            let load = GuestAddress(UInt64(TANDEM_TINY_LOAD_ADDR))
            do {
                try FlatBinaryLoader.load(image, named: name, into: memory, at: load,
                                          limit: mode == .real ? VMConfig.realModeImageLimit : .max)
            } catch { throw .boot(error) }
            do {
                switch mode {
                case .long: try TinySetup.enterLongMode(vcpus[0], memory: memory, entry: load, argument: argument)
                case .real: try TinySetup.enterRealMode(vcpus[0], memory: memory, entry: load, argument: argument)
                }
            } catch let error as KVMError { throw .kvm(error) } catch let error as GuestMemoryError { throw .memory(error) } catch {
                throw .system(SystemError("setup", "\(error)", errno: EINVAL))
            }
        case .linux:
            preconditionFailure("Linux images are loaded by LinuxImageLoad")
        }
    }

    /// CPU state for the loaded kernel, on every vCPU.
    private func prepareLinux(_ boot: LinuxBoot) throws(MicroVMError) {
        do {
            let supported = try vm.system.supportedCPUID()
            for vcpu in vcpus {
                try LinuxSetup.prepare(vcpu, of: vcpus.count, supportedCPUID: supported, memory: memory, boot: boot)
            }
        } catch let error as KVMError { throw .kvm(error) } catch let error as GuestMemoryError { throw .memory(error) } catch {
            throw .system(SystemError("setup", "\(error)", errno: EINVAL))
        }
    }
}

/// Copies a Linux guest's boot pieces into guest RAM on a thread of its own: the ACPI tables,
/// the kernel, the initrd, the command line and the zero page. It touches only `GuestMemory`.
final class LinuxImageLoad: @unchecked Sendable {
    private var thread: HostThread?
    private var result: Result<LinuxBoot, MicroVMError> = .failure(.system(SystemError("load", "not run", errno: EINVAL)))

    /// Starts loading when `config` boots Linux; nil otherwise.
    static func start(_ config: VMConfig, into memory: GuestMemory) throws(MicroVMError) -> LinuxImageLoad? {
        guard case .linux(let kernel, let initrd, let commandLine) = config.boot else { return nil }
        let load = LinuxImageLoad()
        let vcpus = config.vcpus
        let virtio = (0..<config.virtioSlots).map { index in
            AML.VirtioMMIO(base: UInt32(TANDEM_VIRTIO_MMIO_BASE) + UInt32(index) * UInt32(TANDEM_VIRTIO_MMIO_STRIDE),
                           length: UInt32(TANDEM_VIRTIO_MMIO_STRIDE), irq: UInt32(TANDEM_VIRTIO_IRQ_BASE) + UInt32(index))
        }
        do {
            load.thread = try HostThread(name: "image loader") {
                load.result = LinuxImageLoad.load(kernel: kernel, initrd: initrd, commandLine: commandLine, vcpus: vcpus, virtio: virtio, into: memory)
            }
        } catch { throw .system(error) }
        return load
    }

    /// Waits for the copy to finish (once; later calls return the same result).
    @discardableResult
    func wait() throws(MicroVMError) -> LinuxBoot {
        if let thread { thread.join(); self.thread = nil }
        return try result.get()
    }

    static func load(kernel: any BootImage, initrd: (any BootImage)?, commandLine: String, vcpus: Int, virtio: [AML.VirtioMMIO] = [],
                     into memory: GuestMemory) -> Result<LinuxBoot, MicroVMError> {
        // ACPI tables describe the vCPUs and the IOAPIC (the cloud kernel ignores MP tables).
        do {
            for table in ACPITables.build(cpus: vcpus, virtio: virtio) { try memory.write(table.bytes, at: table.address) }
        } catch { return .failure(.memory(error)) }
        do {
            return .success(try LinuxLoader.load(kernel: kernel, initrd: initrd,
                                                 commandLine: LinuxSetup.baseCommandLine + (commandLine.isEmpty ? "" : " " + commandLine),
                                                 acpiRSDP: ACPITables.rsdpAddress, into: memory))
        } catch { return .failure(.boot(error)) }
    }
}
