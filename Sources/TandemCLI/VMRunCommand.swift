import ArgumentParser
import HostFacts
import HostOS
import MicroVM
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm run`: boot a guest with Tandem's own VMM on /dev/kvm.
struct VMRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest in a microVM with Tandem's own KVM VMM.",
        discussion: """
        The guest's console is streamed to stdout. Exit status: the guest's own status (0-255), or \
        124 when --timeout stopped it, 125 when Tandem failed, 126 when the guest crashed its vCPU \
        (triple fault, KVM internal error), 128+N after signal N (Ctrl-C: 130).
        Tiny guests: \(TinyGuests.catalog.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")).
        """
    )

    @Option(name: .long, help: ArgumentHelp("A tiny bare guest: a name from `make guests`, or a path to a flat binary. Without it, Linux boots.", valueName: "name|path"))
    var tiny: String?

    @Option(name: .long, help: ArgumentHelp("Linux bzImage (default: the newest /boot/vmlinuz-*-cloud-amd64).", valueName: "path"))
    var kernel: String?

    @Option(name: .long, help: ArgumentHelp("initramfs (default: the image from `tandem image build`).", valueName: "path"))
    var initrd: String?

    @Option(name: .long, help: ArgumentHelp("Appended to Tandem's kernel command line.", valueName: "text"))
    var cmdline: String?

    @Option(name: .long, help: ArgumentHelp("The workload tandem-init runs in a Linux guest (tandem.workload=NAME).", valueName: "name"))
    var workload: String?

    // (.unconditional: "--vcpus -3" is a value, refused with its reason, not "a missing value".)
    @Option(name: .long, parsing: .unconditional, help: "Virtual CPUs of a Linux guest.")
    var vcpus: Int = 1

    @Option(name: .long, help: "CPU mode a flat binary starts in (the built-in guests know their own).")
    var mode: CPUModeArgument?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Guest RAM in MiB (tiny guests: \(VMConfig.minimumTinyMemoryMiB)-\(VMConfig.maximumTinyMemoryMiB), default \(VMConfig.defaultTinyMemoryMiB); Linux: default \(VMConfig.defaultLinuxMemoryMiB)).", valueName: "MiB"))
    var memory: Int?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("A number handed to the tiny guest in RDI (compute: the sieve size, default \(TinyGuests.defaultComputeSize); exit: the status).", valueName: "n"))
    var arg: UInt64?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Stop the guest after this many seconds (0: never; at most a year).", valueName: "seconds"))
    var timeout: Double = 0

    @Flag(name: .long, help: "Print a JSON report (schema tandem.vm-run/1) on stdout; the guest console goes to stderr.")
    var json = false

    @Option(name: .long, help: "The KVM device.")
    var kvmDevice = "/dev/kvm"

    @Flag(name: .long, help: "Boot Linux even where /dev/kvm has no hardware virtualisation (guest code emulated: minutes, or no boot at all; `tandem lab nested` is the way there).")
    var allowEmulated = false

    @Option(name: .long, help: ArgumentHelp("microvm: Tandem's own VMM on /dev/kvm; libvirt: a guest through the libvirt daemon; qemu: QEMU's microvm machine run directly (no daemon), as the benchmark's qemu-microvm peer.", valueName: "microvm|libvirt|qemu"))
    var backend = "microvm"

    @Option(name: .long, help: ArgumentHelp("libvirt: the connection URI (remote ones too, e.g. qemu+ssh://host/system).", valueName: "uri"))
    var connect = "qemu:///system"

    @Option(name: .long, help: ArgumentHelp("libvirt, qemu: kvm where the host has hardware virtualisation, else tcg (auto).", valueName: "auto|kvm|tcg"))
    var accel = "auto"

    @Option(name: .long, help: ArgumentHelp("libvirt: the QEMU machine type (default microvm; pc with --disk).", valueName: "microvm|q35|pc"))
    var machine: String?

    @Flag(name: .long, help: "libvirt: boot from an ext4 root disk (virtio-blk) made from the same image, as a distro guest does.")
    var disk = false

    @Option(name: .long, help: ArgumentHelp("microvm: a raw disk image as virtio-blk over virtio-mmio (repeatable; ,ro: read-only, also on the host). Firecracker calls them drives; libvirt's --disk above is its root disk.", valueName: "path[,ro]"))
    var drive: [String] = []

    @Option(name: .long, help: ArgumentHelp("A network interface as virtio-net. bridge: on Tandem's bridge tandembr0 with a leased address, beside containers with --net bridge (microvm, libvirt and qemu). microvm (repeatable): tap: Tandem makes tandemN, gives the host 172.30.N.1/24 and the guest 172.30.N.2 (tandem-init sets it up as eth0), and removes it when the VM ends; tap=NAME: that tap, existing or new, addressed by you (the guest's address with --cmdline tandem.net=ADDRESS/PREFIX[,GATEWAY]).", valueName: "tap[=name]|bridge"))
    var net: [String] = []

    @Option(name: .long, help: ArgumentHelp("microvm: boot with the root on this ext4 image (drive 0, /dev/vda; the --drive disks follow): the guest image is the first stage, tandem-init mounts the disk and switches root — the disk libvirt's --disk makes, or `tandem image` keeps per image.", valueName: "path"))
    var rootDisk: String?

    @Option(name: .long, help: ArgumentHelp("microvm: a virtio-vsock device (guest CID 3) whose host side is a Unix socket Tandem makes at PATH and removes after the run, as Firecracker's: a host program connects to PATH and writes `CONNECT <port>\\n` to reach a guest port (answered `OK <host port>\\n`); the guest's connections to CID 2 port P reach the Unix socket PATH_P.", valueName: "path"))
    var vsock: String?

    @Option(name: .long, help: ArgumentHelp("microvm: a control socket at PATH (made, and removed after the run) through which `tandem vm pause|resume|snapshot|describe PATH` reach the VM: one JSON request per connection, as Firecracker's API socket (docs/snapshots.md).", valueName: "path"))
    var apiSock: String?

    @Flag(name: .long, help: "libvirt: keep the console file afterwards.")
    var keep = false

    var options: VMRunOptions {
        VMRunOptions(tiny: tiny, mode: mode?.value, memory: memory, kernel: kernel, initrd: initrd, cmdline: cmdline,
                     workload: workload, vcpus: vcpus, arg: arg, timeout: timeout, json: json, kvmDevice: kvmDevice,
                     allowEmulated: allowEmulated, drives: drive, rootDisk: rootDisk, nets: net, vsock: vsock, apiSocket: apiSock)
    }

    func run() throws {
        switch backend {
        case "microvm": VMRunner.runAndExit(options, processStart: nil)
        case "libvirt": throw ExitCode(VMRunLibvirt.run(self))
        case "qemu": throw ExitCode(VMRunQEMU.run(self))
        default: throw fail("--backend \(backend): must be microvm, libvirt or qemu")
        }
    }

}

/// `--mode long|real`.
struct CPUModeArgument: ExpressibleByArgument {
    let value: CPUMode
    init?(argument: String) {
        guard let mode = CPUMode(rawValue: argument) else { return nil }
        value = mode
    }
    static var allValueStrings: [String] { CPUMode.allCases.map(\.rawValue) }
}
