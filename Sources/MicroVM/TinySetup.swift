import CKVM
import GuestABI
import GuestMemory
import KVM

/// CPU state for a tiny flat guest, in long or real mode (tandem_guest_abi.h has the contract).
enum TinySetup {
    /// Long mode: GDT and identity page tables into RAM, then segment, control and general registers.
    static func enterLongMode(_ vcpu: VCPU, memory: GuestMemory, entry: GuestAddress, argument: UInt64) throws {
        let gdt = X86.flatGDT()
        try memory.write(X86.gdtBytes(gdt), at: GuestAddress(UInt64(TANDEM_TINY_GDT_ADDR)))
        try X86.writeTinyPageTables(into: memory)

        var sregs = try vcpu.specialRegisters()
        sregs.gdt.base = UInt64(TANDEM_TINY_GDT_ADDR)
        sregs.gdt.limit = UInt16(gdt.count * 8 - 1)
        sregs.idt.base = 0
        sregs.idt.limit = 0  // no IDT: any exception escalates to a triple fault, which we report
        let code = kvmSegment(gdt[1], selector: X86.codeSelector)
        let data = kvmSegment(gdt[2], selector: X86.dataSelector)
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = kvmSegment(gdt[3], selector: X86.taskSelector)
        sregs.cr3 = UInt64(TANDEM_TINY_PML4_ADDR)
        sregs.cr4 = X86.cr4PhysicalAddressExtension
        sregs.cr0 = X86.cr0ProtectionEnable | X86.cr0MonitorCoprocessor | X86.cr0ExtensionType
            | X86.cr0NumericError | X86.cr0Paging
        sregs.efer = X86.eferLongModeEnable | X86.eferLongModeActive
        try vcpu.setSpecialRegisters(sregs)

        var regs = kvm_regs()
        regs.rip = entry.value
        regs.rflags = X86.rflagsReserved
        regs.rsp = UInt64(memory.size) & ~0xf
        regs.rdi = argument
        regs.rsi = UInt64(memory.size)
        try vcpu.setRegisters(regs)
    }

    /// Real mode: every segment at the load address, as a boot sector would see a 64 KiB segment.
    static func enterRealMode(_ vcpu: VCPU, memory: GuestMemory, entry: GuestAddress, argument: UInt64) throws {
        var sregs = try vcpu.specialRegisters()
        var segment = sregs.cs
        segment.selector = UInt16(entry.value >> 4)
        segment.base = entry.value & ~0xf
        segment.limit = 0xffff
        sregs.cs = segment
        segment.type = 0x3  // read/write data, accessed
        sregs.ds = segment; sregs.es = segment; sregs.fs = segment; sregs.gs = segment; sregs.ss = segment
        sregs.cr0 &= ~(X86.cr0ProtectionEnable | X86.cr0Paging)
        try vcpu.setSpecialRegisters(sregs)

        var regs = kvm_regs()
        regs.rip = entry.value & 0xf
        regs.rflags = X86.rflagsReserved
        regs.rsp = 0xfff0
        regs.rdi = argument & 0xffff_ffff
        regs.rsi = UInt64(min(memory.size, Int(UInt32.max)))
        try vcpu.setRegisters(regs)
    }

    /// A KVM segment register from a descriptor (what the CPU would load from the GDT).
    static func kvmSegment(_ descriptor: SegmentDescriptor, selector: UInt16) -> kvm_segment {
        var segment = kvm_segment()
        segment.base = UInt64(descriptor.base)
        segment.limit = descriptor.effectiveLimit
        segment.selector = selector
        segment.type = descriptor.type
        segment.present = descriptor.present ? 1 : 0
        segment.dpl = descriptor.privilege
        segment.db = descriptor.defaultSize32 ? 1 : 0
        segment.s = descriptor.system ? 0 : 1
        segment.l = descriptor.longMode ? 1 : 0
        segment.g = descriptor.granularity4K ? 1 : 0
        return segment
    }
}
