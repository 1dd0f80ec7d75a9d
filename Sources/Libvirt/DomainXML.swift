import HostOS

/// A libvirt domain as Tandem describes it (https://libvirt.org/formatdomain.html): a typed model
/// that serializes to escaped XML. Only what Tandem's guests use; libvirt validates the rest.
public struct DomainDefinition: Equatable, Sendable {
    /// `<domain type=...>`: kvm (hardware virtualisation) or qemu (TCG, software emulation).
    public enum Accelerator: String, Sendable { case kvm, qemu }
    public enum Machine: String, Sendable, CaseIterable { case microvm, q35, pc }

    public var name: String
    public var accelerator: Accelerator
    public var machine: Machine
    public var memoryMiB: Int
    public var vcpus: Int
    public var kernel: String
    public var initrd: String?
    public var commandLine: String
    /// The serial console goes to this file (libvirt makes it, owned by the QEMU user).
    public var consoleFile: String
    /// A disk image attached as virtio-blk (vda), or nil.
    public var disk: String?
    /// Its format: raw, or qcow2 (a copy-on-write overlay whose backing file libvirt and QEMU
    /// open read-only; its header names the backing file and that file's format).
    public var diskFormat = DiskFormat.raw

    public enum DiskFormat: String, Sendable { case raw, qcow2 }

    /// A virtio-net interface whose tap libvirt makes and puts on an existing host bridge
    /// (`<interface type='bridge'>`), with a fixed MAC; nil: no network device.
    public var network: BridgedInterface?

    public struct BridgedInterface: Equatable, Sendable {
        public var bridge: String
        public var mac: String
        public init(bridge: String, mac: String) {
            self.bridge = bridge
            self.mac = mac
        }
    }
    public var emulator: String?
    /// Tandem's mark: who made the domain (XML namespace `metadataNamespace`), so a later run can
    /// tell Tandem's domains — and stale ones — from everyone else's.
    public var owner: Owner

    public struct Owner: Equatable, Sendable {
        public var pid: Int32
        public var startTime: UInt64
        public init(pid: Int32, startTime: UInt64) {
            self.pid = pid
            self.startTime = startTime
        }
    }

    public static let namePrefix = "tandem-"
    public static let metadataNamespace = "https://tandem.invalid/xmlns/domain/1"

    public init(name: String, accelerator: Accelerator, machine: Machine, memoryMiB: Int, vcpus: Int, kernel: String,
                initrd: String?, commandLine: String, consoleFile: String, disk: String? = nil, emulator: String? = nil,
                owner: Owner) {
        self.name = name
        self.accelerator = accelerator
        self.machine = machine
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.kernel = kernel
        self.initrd = initrd
        self.commandLine = commandLine
        self.consoleFile = consoleFile
        self.disk = disk
        self.emulator = emulator
        self.owner = owner
    }

    public var xml: String {
        var lines: [String] = []
        lines.append("<domain type=\(attribute(accelerator.rawValue))>")
        lines.append("  <name>\(escape(name))</name>")
        lines.append("  <metadata>")
        lines.append("    <tandem:owner xmlns:tandem=\(attribute(Self.metadataNamespace)) pid=\(attribute(String(owner.pid))) start=\(attribute(String(owner.startTime)))/>")
        lines.append("  </metadata>")
        lines.append("  <memory unit='MiB'>\(memoryMiB)</memory>")
        lines.append("  <vcpu>\(vcpus)</vcpu>")
        lines.append("  <os>")
        lines.append("    <type arch='x86_64' machine=\(attribute(machine.rawValue))>hvm</type>")
        lines.append("    <kernel>\(escape(kernel))</kernel>")
        if let initrd { lines.append("    <initrd>\(escape(initrd))</initrd>") }
        lines.append("    <cmdline>\(escape(commandLine))</cmdline>")
        lines.append("  </os>")
        // Without <acpi/> libvirt passes -no-acpi, and a guest's poweroff only halts it.
        lines.append("  <features><acpi/></features>")
        if accelerator == .kvm { lines.append("  <cpu mode='host-passthrough'/>") }
        lines.append("  <on_poweroff>destroy</on_poweroff>")
        lines.append("  <on_reboot>destroy</on_reboot>")
        lines.append("  <on_crash>destroy</on_crash>")
        lines.append("  <devices>")
        if let emulator { lines.append("    <emulator>\(escape(emulator))</emulator>") }
        if let disk {
            lines.append("    <disk type='file' device='disk'>")
            lines.append("      <driver name='qemu' type='\(diskFormat.rawValue)'/>")
            lines.append("      <source file=\(attribute(disk))/>")
            lines.append("      <target dev='vda' bus='virtio'/>")
            lines.append("    </disk>")
        }
        if let network {
            lines.append("    <interface type='bridge'>")
            lines.append("      <source bridge=\(attribute(network.bridge))/>")
            lines.append("      <mac address=\(attribute(network.mac))/>")
            lines.append("      <model type='virtio'/>")
            // microvm has no PCI bus: without this libvirt looks for one and refuses the domain.
            if machine == .microvm { lines.append("      <address type='virtio-mmio'/>") }
            lines.append("    </interface>")
        }
        lines.append("    <serial type='file'>")
        lines.append("      <source path=\(attribute(consoleFile))/>")
        lines.append("      <target port='0'/>")
        lines.append("    </serial>")
        // microvm has no PCI bus: no USB controller, no balloon (libvirt would add both).
        lines.append("    <controller type='usb' model='none'/>")
        lines.append("    <memballoon model='none'/>")
        lines.append("  </devices>")
        lines.append("</domain>")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// XML text escaping (& < > " ').
public func escape(_ text: String) -> String { Markup.escape(text) }

/// A quoted, escaped attribute value.
func attribute(_ value: String) -> String { "'" + escape(value) + "'" }
