import CKVM
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// KVM's saved-state structures, by the kind numbers of ckvm.h (CKVM_STATE_*). A snapshot stores
/// each as the bytes KVM_GET_* returned; `set` refuses bytes of another size than this build's
/// structure before any ioctl sees them.
public enum KVMStateKind: Int32, CaseIterable, Sendable {
    case registers = 1, specialRegisters, xcrs, mpState, vcpuEvents, debugRegisters, lapic
    case clock, pit, picMaster, picSlave, ioapic

    /// What follows KVM_GET_/KVM_SET_ in the ioctl's name, for errors.
    var ioctlSuffix: String {
        switch self {
        case .registers: "REGS"
        case .specialRegisters: "SREGS"
        case .xcrs: "XCRS"
        case .mpState: "MP_STATE"
        case .vcpuEvents: "VCPU_EVENTS"
        case .debugRegisters: "DEBUGREGS"
        case .lapic: "LAPIC"
        case .clock: "CLOCK"
        case .pit: "PIT2"
        case .picMaster: "IRQCHIP (PIC master)"
        case .picSlave: "IRQCHIP (PIC slave)"
        case .ioapic: "IRQCHIP (IOAPIC)"
        }
    }

    /// The getter's and the setter's names.
    public var name: String { "KVM_GET_" + ioctlSuffix }
    public var setterName: String { "KVM_SET_" + ioctlSuffix }

    /// This build's structure size.
    public var size: Int { ckvm_state_size(rawValue) }

    /// The vCPU kinds in the order a restore applies them (Firecracker's order: registers before
    /// the LAPIC, the MP state and pending events last). `withLAPIC`: the VM has an in-kernel irqchip.
    public static func vcpuKinds(withLAPIC: Bool) -> [KVMStateKind] {
        [.registers, .specialRegisters, .xcrs, .debugRegisters] + (withLAPIC ? [.lapic] : []) + [.mpState, .vcpuEvents]
    }

    /// The VM kinds (the clock; with an in-kernel irqchip its PICs, IOAPIC and PIT too).
    public static func vmKinds(withIRQChip: Bool) -> [KVMStateKind] {
        (withIRQChip ? [.pit, .picMaster, .picSlave, .ioapic] : []) + [.clock]
    }
}

/// Reads and writes one kind of state on the fd of a vCPU or a VM.
enum KVMStateIO {
    static func get(_ kind: KVMStateKind, fd: Int32, of what: String) throws(KVMError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: kind.size)
        let result = bytes.withUnsafeMutableBytes { ckvm_get_state(fd, kind.rawValue, $0.baseAddress) }
        guard result >= 0 else { throw .system(SystemError("ioctl \(kind.name)", what)) }
        return bytes
    }

    static func set(_ kind: KVMStateKind, _ bytes: [UInt8], fd: Int32, of what: String) throws(KVMError) {
        guard bytes.count == kind.size else {
            throw .system(SystemError("ioctl \(kind.setterName)", "\(what): \(bytes.count) bytes saved, this host's structure has \(kind.size)", errno: EINVAL))
        }
        var copy = bytes
        let result = copy.withUnsafeMutableBytes { ckvm_set_state(fd, kind.rawValue, $0.baseAddress) }
        guard result >= 0 else { throw .system(SystemError("ioctl \(kind.setterName)", what)) }
    }
}

extension VCPU {
    public func state(_ kind: KVMStateKind) throws(KVMError) -> [UInt8] { try KVMStateIO.get(kind, fd: fd.rawValue, of: "vcpu \(id)") }
    public func setState(_ kind: KVMStateKind, _ bytes: [UInt8]) throws(KVMError) { try KVMStateIO.set(kind, bytes, fd: fd.rawValue, of: "vcpu \(id)") }

    /// The XSAVE area (x87, SSE, AVX... registers): `size` bytes, `KVMSystem.xsaveSize`.
    public func xsave(size: Int) throws(KVMError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: size)
        guard bytes.withUnsafeMutableBytes({ ckvm_get_xsave(fd.rawValue, $0.baseAddress, Int32(size)) }) >= 0 else {
            throw .system(SystemError("ioctl KVM_GET_XSAVE", "vcpu \(id), \(size) bytes"))
        }
        return bytes
    }

    public func setXSAVE(_ bytes: [UInt8]) throws(KVMError) {
        guard bytes.withUnsafeBytes({ ckvm_set_xsave(fd.rawValue, $0.baseAddress) }) >= 0 else {
            throw .system(SystemError("ioctl KVM_SET_XSAVE", "vcpu \(id), \(bytes.count) bytes"))
        }
    }

    /// The values of `indices` KVM lets this vCPU read. KVM_GET_MSRS stops at the first MSR it
    /// refuses (one the vCPU's CPUID does not offer): that one is skipped and the rest read on.
    public func msrs(_ indices: [UInt32]) throws(KVMError) -> [(index: UInt32, value: UInt64)] {
        var values: [(index: UInt32, value: UInt64)] = []
        var rest = indices[...]
        while !rest.isEmpty {
            guard let list = ckvm_msrs_alloc(UInt32(rest.count)) else { throw .system(SystemError("calloc", "kvm_msrs", errno: ENOMEM)) }
            defer { free(list) }
            let entries = ckvm_msrs_entries(list)!
            for (position, index) in rest.enumerated() { entries[position] = kvm_msr_entry(index: index, reserved: 0, data: 0) }
            let read = ckvm_get_msrs(fd.rawValue, list)
            guard read >= 0 else { throw .system(SystemError("ioctl KVM_GET_MSRS", "vcpu \(id), \(rest.count) MSRs")) }
            for position in 0..<Int(read) { values.append((entries[position].index, entries[position].data)) }
            rest = rest.dropFirst(Int(read) + 1)
        }
        return values
    }

    /// The CPUID entries KVM_SET_CPUID2 gave this vCPU, as raw kvm_cpuid_entry2 bytes (empty when never set).
    public func cpuidBytes() throws(KVMError) -> [UInt8] {
        var capacity: UInt32 = 64
        while true {
            guard let cpuid = ckvm_cpuid2_alloc(capacity) else { throw .system(SystemError("calloc", "kvm_cpuid2", errno: ENOMEM)) }
            defer { free(cpuid) }
            if ckvm_get_cpuid2(fd.rawValue, cpuid) == 0 {
                let count = Int(cpuid.pointee.nent) * MemoryLayout<kvm_cpuid_entry2>.stride
                return Array(UnsafeRawBufferPointer(start: ckvm_cpuid2_entries(cpuid), count: count))
            }
            guard errno == E2BIG, capacity < 4096 else { throw .system(SystemError("ioctl KVM_GET_CPUID2", "vcpu \(id)")) }
            capacity *= 2
        }
    }

    /// KVM_SET_CPUID2 from `cpuidBytes`' output; the bytes must be whole entries.
    public func setCPUID(bytes: [UInt8]) throws(KVMError) {
        let stride = MemoryLayout<kvm_cpuid_entry2>.stride
        guard bytes.count % stride == 0 else {
            throw .system(SystemError("ioctl KVM_SET_CPUID2", "vcpu \(id): \(bytes.count) bytes is not a whole number of \(stride)-byte entries", errno: EINVAL))
        }
        let entries = bytes.withUnsafeBytes { raw in (0..<(bytes.count / stride)).map { raw.loadUnaligned(fromByteOffset: $0 * stride, as: kvm_cpuid_entry2.self) } }
        try setCPUID(entries)
    }
}

extension VirtualMachine {
    public func state(_ kind: KVMStateKind) throws(KVMError) -> [UInt8] { try KVMStateIO.get(kind, fd: fd.rawValue, of: "vm") }
    public func setState(_ kind: KVMStateKind, _ bytes: [UInt8]) throws(KVMError) { try KVMStateIO.set(kind, bytes, fd: fd.rawValue, of: "vm") }
}

extension KVMSystem {
    /// The size of a vCPU's XSAVE area on this host (KVM_CAP_XSAVE2, at least 4096).
    public func xsaveSize() -> Int { Int(ckvm_xsave_size(fd.rawValue)) }

    /// KVM_GET_MSR_INDEX_LIST: the MSRs KVM saves and restores for a guest.
    public func msrIndexList() throws(KVMError) -> [UInt32] {
        var capacity = 256
        while true {
            var indices = [UInt32](repeating: 0, count: capacity)
            let count = indices.withUnsafeMutableBufferPointer { ckvm_msr_index_list(fd.rawValue, $0.baseAddress, UInt32(capacity)) }
            guard count >= 0 else { throw .system(SystemError("ioctl KVM_GET_MSR_INDEX_LIST")) }
            if Int(count) <= capacity { return Array(indices.prefix(Int(count))) }
            capacity = Int(count)
        }
    }
}
