import CKVM
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A port I/O access the guest made (`in`/`out`, possibly `rep ins`/`rep outs`).
/// `data` holds `count * size` bytes inside the vCPU's kvm_run page: the VMM reads it for an
/// `out` and fills it for an `in`. Valid until the next `VCPU.run()`.
public struct PortIOAccess {
    public let port: UInt16
    public let size: Int
    public let count: Int
    public let isWrite: Bool
    public let data: UnsafeMutableRawBufferPointer
}

/// A memory access to a guest-physical address that no memory slot backs.
/// `data` holds `length` bytes (at most 8) inside kvm_run; valid until the next `VCPU.run()`.
public struct MMIOAccess {
    public let address: UInt64
    public let isWrite: Bool
    public let data: UnsafeMutableRawBufferPointer
}

/// Why KVM_RUN returned to userspace, typed. The names follow KVM_EXIT_*.
public enum VCPUExit {
    case portIO(PortIOAccess)
    case mmio(MMIOAccess)
    /// The guest executed HLT with interrupts off, or KVM returned the halt to us.
    case halt
    /// The guest triple-faulted (or otherwise reset the CPU).
    case shutdown
    /// KVM could not emulate something: `suberror` is KVM_INTERNAL_ERROR_*.
    case internalError(suberror: UInt32)
    /// The hardware refused VM entry; `reason` is the hardware's code.
    case failEntry(reason: UInt64)
    /// KVM_SYSTEM_EVENT_* (shutdown, reset, crash) from a paravirtual interface.
    case systemEvent(type: UInt32)
    /// KVM_RUN returned EINTR: the vCPU was kicked (or a signal arrived).
    case interrupted
    /// An exit this VMM does not handle.
    case other(reason: UInt32)
}

/// One virtual CPU. KVM requires a vCPU to be run from one thread at a time; Tandem gives each
/// vCPU its own thread and kicks it out of KVM_RUN with `kick(thread:)`.
public final class VCPU: @unchecked Sendable {
    public let id: Int
    public let fd: FileDescriptor
    let runMapping: MemoryMapping
    /// The shared kvm_run structure this vCPU's exits are reported in.
    public let kvmRun: UnsafeMutablePointer<kvm_run>

    init(id: Int, fd: FileDescriptor, runMapping: MemoryMapping) {
        self.id = id
        self.fd = fd
        self.runMapping = runMapping
        kvmRun = runMapping.base.assumingMemoryBound(to: kvm_run.self)
    }

    /// Enters the guest and returns the next exit that needs the VMM.
    public func run() throws(KVMError) -> VCPUExit {
        if ckvm_run(fd.rawValue) != 0 {
            let code = errno
            if code == EINTR || code == EAGAIN {
                kvmRun.pointee.immediate_exit = 0
                return .interrupted
            }
            throw .system(SystemError("ioctl KVM_RUN", "vcpu \(id)", errno: code))
        }
        switch Int32(kvmRun.pointee.exit_reason) {
        case KVM_EXIT_IO:
            let io = kvmRun.pointee.io
            let data = UnsafeMutableRawBufferPointer(start: ckvm_io_data(kvmRun), count: Int(io.size) * Int(io.count))
            return .portIO(PortIOAccess(port: io.port, size: Int(io.size), count: Int(io.count),
                                        isWrite: io.direction == UInt8(KVM_EXIT_IO_OUT), data: data))
        case KVM_EXIT_MMIO:
            let mmio = kvmRun.pointee.mmio
            let data = UnsafeMutableRawBufferPointer(start: ckvm_mmio_data(kvmRun), count: Int(min(mmio.len, 8)))
            return .mmio(MMIOAccess(address: mmio.phys_addr, isWrite: mmio.is_write != 0, data: data))
        case KVM_EXIT_HLT: return .halt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_INTERNAL_ERROR: return .internalError(suberror: kvmRun.pointee.internal.suberror)
        case KVM_EXIT_FAIL_ENTRY: return .failEntry(reason: kvmRun.pointee.fail_entry.hardware_entry_failure_reason)
        case KVM_EXIT_SYSTEM_EVENT: return .systemEvent(type: kvmRun.pointee.system_event.type)
        case KVM_EXIT_INTR: return .interrupted
        default: return .other(reason: kvmRun.pointee.exit_reason)
        }
    }

    /// Makes `thread` (which runs this vCPU) leave KVM_RUN soon: at once if it is inside, or at its
    /// next entry if it is about to enter (kvm_run.immediate_exit). Safe from any thread.
    public func kick(thread: pthread_t) {
        _ = ckvm_kick(kvmRun, thread)
    }

    /// Lets `signals`, blocked in the calling thread, interrupt this vCPU's KVM_RUN on it
    /// (KVM_SET_SIGNAL_MASK: the thread's mask without them, in force inside KVM_RUN only). One
    /// that is pending or arrives makes KVM_RUN return EINTR; it stays pending for a signalfd.
    public func letSignalsInterruptRun(_ signals: [Int32]) throws(KVMError) {
        let result = signals.withUnsafeBufferPointer { ckvm_set_signal_mask_unblocking(fd.rawValue, $0.baseAddress, Int32($0.count)) }
        guard result == 0 else { throw .system(SystemError("ioctl KVM_SET_SIGNAL_MASK", "vcpu \(id)")) }
    }

    /// Makes this thread's next KVM_RUN return EINTR at once — after KVM has completed the last
    /// exit's I/O (the KVM API's way to reach a state that can be saved whole).
    public func requestImmediateExit() {
        kvmRun.pointee.immediate_exit = 1
    }

    /// Installs the kick signal's handler; call once before starting vCPU threads.
    public static func prepareKickSignal() -> Int32 { ckvm_kick_signal() }

    /// Makes sure the calling thread can be kicked; call first thing on each vCPU thread.
    public static func acceptKicks() { _ = ckvm_unblock_kick_signal() }

    public func registers() throws(KVMError) -> kvm_regs {
        var regs = kvm_regs()
        guard ckvm_get_regs(fd.rawValue, &regs) == 0 else { throw .system(SystemError("ioctl KVM_GET_REGS", "vcpu \(id)")) }
        return regs
    }

    public func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var regs = regs
        guard ckvm_set_regs(fd.rawValue, &regs) == 0 else { throw .system(SystemError("ioctl KVM_SET_REGS", "vcpu \(id)")) }
    }

    public func specialRegisters() throws(KVMError) -> kvm_sregs {
        var sregs = kvm_sregs()
        guard ckvm_get_sregs(fd.rawValue, &sregs) == 0 else { throw .system(SystemError("ioctl KVM_GET_SREGS", "vcpu \(id)")) }
        return sregs
    }

    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var sregs = sregs
        guard ckvm_set_sregs(fd.rawValue, &sregs) == 0 else { throw .system(SystemError("ioctl KVM_SET_SREGS", "vcpu \(id)")) }
    }
}

extension VCPU {
    /// KVM_SET_CPUID2: what CPUID tells the guest on this vCPU.
    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(KVMError) {
        guard let cpuid = ckvm_cpuid2_alloc(UInt32(entries.count)) else { throw .system(SystemError("calloc", "kvm_cpuid2", errno: ENOMEM)) }
        defer { free(cpuid) }
        let destination = ckvm_cpuid2_entries(cpuid)!
        for (index, entry) in entries.enumerated() { destination[index] = entry }
        guard ckvm_set_cpuid2(fd.rawValue, cpuid) == 0 else { throw .system(SystemError("ioctl KVM_SET_CPUID2", "vcpu \(id), \(entries.count) entries")) }
    }

    /// KVM_SET_MSRS: every (index, value) pair must be accepted, or the first refused one is named.
    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        guard let list = ckvm_msrs_alloc(UInt32(msrs.count)) else { throw .system(SystemError("calloc", "kvm_msrs", errno: ENOMEM)) }
        defer { free(list) }
        let entries = ckvm_msrs_entries(list)!
        for (position, msr) in msrs.enumerated() {
            entries[position] = kvm_msr_entry(index: msr.index, reserved: 0, data: msr.value)
        }
        let set = ckvm_set_msrs(fd.rawValue, list)
        guard set == Int32(msrs.count) else {
            let failed = set >= 0 && Int(set) < msrs.count ? "MSR 0x" + String(msrs[Int(set)].index, radix: 16) : "\(msrs.count) MSRs"
            throw .system(SystemError("ioctl KVM_SET_MSRS", "vcpu \(id), \(failed)", errno: set < 0 ? errno : EINVAL))
        }
    }

    /// KVM_SET_FPU with the x87 control word and MXCSR a CPU has after reset (as Linux expects).
    public func resetFPU() throws(KVMError) {
        var fpu = kvm_fpu()
        fpu.fcw = 0x37f
        fpu.mxcsr = 0x1f80
        guard ckvm_set_fpu(fd.rawValue, &fpu) == 0 else { throw .system(SystemError("ioctl KVM_SET_FPU", "vcpu \(id)")) }
    }

    /// Reads the local APIC's register page, lets `body` edit it, writes it back.
    public func editLAPIC(_ body: (inout [UInt8]) -> Void) throws(KVMError) {
        var state = kvm_lapic_state()
        guard ckvm_get_lapic(fd.rawValue, &state) == 0 else { throw .system(SystemError("ioctl KVM_GET_LAPIC", "vcpu \(id)")) }
        var bytes = withUnsafeBytes(of: state.regs) { Array($0) }
        body(&bytes)
        withUnsafeMutableBytes(of: &state.regs) { destination in
            bytes.withUnsafeBytes { destination.copyMemory(from: $0) }
        }
        guard ckvm_set_lapic(fd.rawValue, &state) == 0 else { throw .system(SystemError("ioctl KVM_SET_LAPIC", "vcpu \(id)")) }
    }
}
