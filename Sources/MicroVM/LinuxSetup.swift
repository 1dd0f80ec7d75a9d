import BootLoader
import CKVM
import Devices
import GuestMemory
import HostOS
import KVM

/// CPU state and devices for a Linux guest entered through the 64-bit boot protocol
/// (Documentation/arch/x86/boot.rst, "64-bit boot protocol").
enum LinuxSetup {
    /// Guest-physical homes of the structures the VMM writes for Linux (below the zero page at 0x7000
    /// and the command line at 0x20000; the same places Firecracker uses).
    static let gdtAddress = GuestAddress(0x500)
    static let idtAddress = GuestAddress(0x520)
    static let pml4Address = GuestAddress(0x9000)
    static let pdptAddress = GuestAddress(0xa000)
    static let firstPageDirectory = GuestAddress(0xb000)  // four of them: 0xb000..0xefff
    static let bootStack: UInt64 = 0x8ff0

    /// The boot protocol wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18.
    static let codeSelector: UInt16 = 0x10
    static let dataSelector: UInt16 = 0x18
    static let taskSelector: UInt16 = 0x20

    /// The kernel command line Tandem starts with; the user's --cmdline is appended.
    /// console on COM1, reboot through the i8042 (which ends the VM), reboot at once on panic, no PCI
    /// bus to probe, no PS/2 mouse, and `tandem.ports=1` so tandem-init uses the control ports. The
    /// i8042 is found through the DSDT (PNP0303), which is also what maps its interrupt.
    static let baseCommandLine = GuestCommandLine.base(reboot: "k", pciOff: true) + " tandem.ports=1"

    /// MSRs Linux expects to find in a sane state at entry (Firecracker's boot set).
    static let bootMSRs: [(index: UInt32, value: UInt64)] = [
        (0x174, 0), (0x175, 0), (0x176, 0),             // IA32_SYSENTER_CS, _ESP, _EIP
        (0xc000_0081, 0), (0xc000_0082, 0), (0xc000_0083, 0), (0xc000_0084, 0), // STAR, LSTAR, CSTAR, SYSCALL_MASK
        (0xc000_0102, 0),                                // KERNEL_GS_BASE
        (0x10, 0),                                       // IA32_TSC
        (0x1a0, 1),                                      // IA32_MISC_ENABLE: fast strings
        (0x2ff, (1 << 11) | 6),                          // MTRRdefType: MTRRs on, write-back by default
    ]

    /// The GDT: null, null, 64-bit code (0x10), data (0x18), TSS (0x20).
    static func gdt() -> [SegmentDescriptor] {
        let flat = X86.flatGDT()
        return [flat[0], flat[0], flat[1], flat[2], flat[3]]
    }

    /// CPUID for vCPU `id` of `count`: KVM's supported set, plus what a guest needs to know it runs
    /// under KVM (the hypervisor bit and the KVM signature: without them the kernel skips
    /// kvm-clock and its timer calibration can hang) and its own APIC id.
    static func cpuid(_ supported: [kvm_cpuid_entry2], vcpu id: Int, of count: Int) -> [kvm_cpuid_entry2] {
        var entries = supported
        let signature: [UInt32] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d]  // "KVMKVMKVM\0\0\0"
        if !entries.contains(where: { $0.function == 0x4000_0000 }) {
            var leaf = kvm_cpuid_entry2()
            leaf.function = 0x4000_0000
            entries.append(leaf)
        }
        for index in entries.indices {
            switch entries[index].function {
            case 0x1:
                entries[index].ecx |= 1 << 31                                   // hypervisor present
                entries[index].ebx = (entries[index].ebx & 0x0000_ffff) | UInt32(id) << 24 | UInt32(count) << 16
                if count > 1 { entries[index].edx |= 1 << 28 }                  // HTT: more than one logical CPU
            case 0xb, 0x1f:
                entries[index].edx = UInt32(id)                                 // x2APIC id
            case 0x4000_0000:
                entries[index].eax = max(entries[index].eax, 0x4000_0001)
                entries[index].ebx = signature[0]
                entries[index].ecx = signature[1]
                entries[index].edx = signature[2]
            default: break
            }
        }
        return entries
    }

    /// Everything a vCPU needs before the kernel's first instruction. Only the boot processor
    /// (vCPU 0) gets registers: the others wait in KVM for the INIT/SIPI the kernel sends them,
    /// which resets them into its real-mode trampoline.
    static func prepare(_ vcpu: VCPU, of count: Int, supportedCPUID: [kvm_cpuid_entry2], memory: GuestMemory, boot: LinuxBoot) throws {
        try vcpu.setCPUID(cpuid(supportedCPUID, vcpu: vcpu.id, of: count))
        try vcpu.setMSRs(bootMSRs)
        try vcpu.resetFPU()
        guard vcpu.id == 0 else { return }
        // LINT0 delivers the 8259's interrupts (ExtINT), LINT1 is NMI: the virtual-wire mode the
        // kernel starts in before it switches to the IOAPIC the MADT describes.
        try vcpu.editLAPIC { registers in
            func edit(_ offset: Int, mode: UInt32) {
                var value = (0..<4).reduce(UInt32(0)) { $0 | UInt32(registers[offset + $1]) << (8 * $1) }
                value = (value & ~0x700) | mode << 8
                for byte in 0..<4 { registers[offset + byte] = UInt8(truncatingIfNeeded: value >> (8 * byte)) }
            }
            edit(0x350, mode: 7)
            edit(0x360, mode: 4)
        }

        let descriptors = gdt()
        try memory.write(X86.gdtBytes(descriptors), at: gdtAddress)
        try memory.write([UInt8](repeating: 0, count: 8), at: idtAddress)
        try X86.writeIdentityPageTables(gibibytes: 4, pml4: pml4Address, pdpt: pdptAddress, firstPageDirectory: firstPageDirectory, into: memory)
        var sregs = try vcpu.specialRegisters()
        sregs.gdt.base = gdtAddress.value
        sregs.gdt.limit = UInt16(descriptors.count * 8 - 1)
        sregs.idt.base = idtAddress.value
        sregs.idt.limit = 7
        let code = TinySetup.kvmSegment(descriptors[2], selector: codeSelector)
        let data = TinySetup.kvmSegment(descriptors[3], selector: dataSelector)
        sregs.cs = code
        sregs.ds = data; sregs.es = data; sregs.fs = data; sregs.gs = data; sregs.ss = data
        sregs.tr = TinySetup.kvmSegment(descriptors[4], selector: taskSelector)
        sregs.cr3 = pml4Address.value
        sregs.cr4 = X86.cr4PhysicalAddressExtension
        sregs.cr0 = X86.cr0ProtectionEnable | X86.cr0ExtensionType | X86.cr0Paging
        sregs.efer = X86.eferLongModeEnable | X86.eferLongModeActive
        try vcpu.setSpecialRegisters(sregs)

        var regs = kvm_regs()
        regs.rflags = X86.rflagsReserved
        regs.rip = boot.entry.value
        regs.rsi = boot.bootParams.value
        regs.rsp = bootStack
        regs.rbp = bootStack
        try vcpu.setRegisters(regs)
    }
}

/// An interrupt line wired to a GSI of KVM's in-kernel irqchip.
final class KVMInterruptLine: InterruptLine, @unchecked Sendable {
    let vm: VirtualMachine
    let gsi: UInt32
    init(vm: VirtualMachine, gsi: UInt32) {
        self.vm = vm
        self.gsi = gsi
    }
    func set(high: Bool) { try? vm.setIRQLine(gsi, high: high) }
}
