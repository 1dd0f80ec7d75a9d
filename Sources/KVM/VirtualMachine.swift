import CKVM
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// One KVM virtual machine: its memory slots, its vCPUs, and (optionally) its in-kernel irqchip.
/// Releasing it closes the VM fd, which tears the VM down in the kernel.
public final class VirtualMachine: @unchecked Sendable {
    public let system: KVMSystem
    public let fd: FileDescriptor
    let runMappingSize: Int
    private var nextSlot: UInt32 = 0

    init(system: KVMSystem, fd: FileDescriptor) throws(KVMError) {
        self.system = system
        self.fd = fd
        runMappingSize = try system.vcpuMmapSize()
    }

    /// Backs guest-physical `[guestAddress, guestAddress + size)` with host memory at `host`.
    /// The caller keeps `host` mapped for the VM's lifetime (GuestMemory owns it).
    public func mapMemory(guestAddress: UInt64, size: Int, host: UnsafeMutableRawPointer) throws(KVMError) {
        var region = kvm_userspace_memory_region(
            slot: nextSlot, flags: 0, guest_phys_addr: guestAddress,
            memory_size: UInt64(size), userspace_addr: UInt64(UInt(bitPattern: host)))
        guard ckvm_set_user_memory_region(fd.rawValue, &region) == 0 else {
            throw .system(SystemError("ioctl KVM_SET_USER_MEMORY_REGION",
                                      "slot \(nextSlot), guest 0x\(String(guestAddress, radix: 16)), \(size) bytes"))
        }
        nextSlot += 1
    }

    /// KVM_SET_TSS_ADDR: Intel hosts need three pages of guest-physical space KVM may use for
    /// real-mode emulation; harmless elsewhere. Must not overlap RAM the guest uses.
    public func setTSSAddress(_ address: UInt64) throws(KVMError) {
        guard ckvm_set_tss_addr(fd.rawValue, address) == 0 else {
            throw .system(SystemError("ioctl KVM_SET_TSS_ADDR", "0x\(String(address, radix: 16))"))
        }
    }

    /// KVM_CREATE_IRQCHIP: in-kernel 8259 PICs, IOAPIC and local APICs (before any vCPU).
    public func createIRQChip() throws(KVMError) {
        guard ckvm_create_irqchip(fd.rawValue) == 0 else { throw .system(SystemError("ioctl KVM_CREATE_IRQCHIP")) }
    }

    /// KVM_CREATE_PIT2: in-kernel i8254 timer.
    public func createPIT() throws(KVMError) {
        guard ckvm_create_pit2(fd.rawValue) == 0 else { throw .system(SystemError("ioctl KVM_CREATE_PIT2")) }
    }

    /// KVM_IRQ_LINE: raise or lower a GSI of the in-kernel irqchip.
    public func setIRQLine(_ irq: UInt32, high: Bool) throws(KVMError) {
        guard ckvm_irq_line(fd.rawValue, irq, high ? 1 : 0) == 0 else {
            throw .system(SystemError("ioctl KVM_IRQ_LINE", "irq \(irq)"))
        }
    }

    /// KVM_IOEVENTFD: the guest's `length`-byte MMIO writes of `value` at `address` signal `eventFD`
    /// in the kernel; the vCPU does not leave KVM_RUN for them (a virtio queue notification costs
    /// no exit to userspace, and the device's thread picks it up). The registration lasts as long
    /// as the VM.
    public func registerIOEventFD(_ eventFD: Int32, address: UInt64, length: UInt32, value: UInt64) throws(KVMError) {
        guard ckvm_ioeventfd(fd.rawValue, address, length, eventFD, 1, value) == 0 else {
            throw .system(SystemError("ioctl KVM_IOEVENTFD", "0x\(String(address, radix: 16)) value \(value)"))
        }
    }

    /// KVM_IRQFD: each write to `eventFD` injects an edge on `gsi` of the in-kernel irqchip, from
    /// any thread and without an ioctl. Lasts as long as the VM.
    public func registerIRQFD(_ eventFD: Int32, gsi: UInt32) throws(KVMError) {
        guard ckvm_irqfd(fd.rawValue, eventFD, gsi) == 0 else {
            throw .system(SystemError("ioctl KVM_IRQFD", "gsi \(gsi)"))
        }
    }

    /// KVM_CREATE_VCPU with `id` (the vCPU's APIC id) and its `kvm_run` mapping.
    public func createVCPU(id: Int) throws(KVMError) -> VCPU {
        let raw = ckvm_create_vcpu(fd.rawValue, UInt(id))
        guard raw >= 0 else { throw .system(SystemError("ioctl KVM_CREATE_VCPU", "\(id)")) }
        let vcpuFD = FileDescriptor(adopting: raw, label: "vcpu \(id)")
        let mapping: MemoryMapping
        do { mapping = try MemoryMapping.shared(fd: vcpuFD, size: runMappingSize) } catch { throw .system(error) }
        return VCPU(id: id, fd: vcpuFD, runMapping: mapping)
    }
}
