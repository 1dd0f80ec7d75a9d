import BootLoader
import HostOS
import GuestABI
import Virtio

/// The CPU mode a flat guest starts in.
public enum CPUMode: String, Sendable, CaseIterable {
    /// 64-bit long mode with paging, the tiny guests' default.
    case long
    /// 16-bit real mode, as a PC's CPU starts.
    case real
}

/// What the VM boots.
public enum BootSource: Sendable {
    /// A flat binary loaded at TANDEM_TINY_LOAD_ADDR and entered in `mode`; `argument` reaches the
    /// guest in RDI (see tandem_guest_abi.h).
    case flat(image: [UInt8], name: String, mode: CPUMode, argument: UInt64)
    /// A Linux bzImage with an optional initramfs, entered through the 64-bit boot protocol.
    /// `commandLine` is appended to Tandem's base command line (console, reboot, tandem.ports=1).
    /// The images are read straight into guest RAM while the VM is built (see `BootImage`).
    case linux(kernel: any BootImage, initrd: (any BootImage)?, commandLine: String)
}

/// Everything that describes one VM run.
public struct VMConfig: Sendable {
    public var boot: BootSource
    public var memoryMiB: Int
    /// Stop the guest after this many nanoseconds; nil runs until the guest ends.
    public var timeoutNanoseconds: UInt64?

    /// Virtual CPUs (Linux guests; a tiny guest always has one).
    public var vcpus: Int
    /// A host file descriptor whose bytes the guest receives on its serial console (the user's
    /// terminal, already in raw mode), or nil. Ctrl-A x read from it stops the VM.
    public var consoleInput: Int32?
    /// Raw disk images attached as virtio-blk over virtio-mmio (`--drive PATH[,ro]`), in order:
    /// drive N at TANDEM_VIRTIO_MMIO_BASE + N * TANDEM_VIRTIO_MMIO_STRIDE, IRQ TANDEM_VIRTIO_IRQ_BASE + N.
    public var drives: [Drive] = []

    /// Network interfaces as virtio-net over virtio-mmio (`--net`), in the slots after the drives.
    public var nets: [Net] = []

    public struct Net: Sendable {
        public var tap: Tap
        public var mac: [UInt8]
        public init(tap: Tap, mac: [UInt8]) {
            self.tap = tap
            self.mac = mac
        }
    }

    /// A vsock device (`--vsock PATH`), listening already, in the slot after the nets.
    public var vsock: VirtioVsock?

    /// The control socket (`--api-sock PATH`), listening already: `pause`, `resume`, `snapshot`,
    /// `describe` (docs/snapshots.md). Its file goes with the run.
    public var controlSocket: UnixListener?

    /// How many virtio-mmio slots the VM uses (drives, then nets, then the vsock).
    public var virtioSlots: Int { drives.count + nets.count + (vsock == nil ? 0 : 1) }

    public struct Drive: Equatable, Sendable {
        public var path: String
        public var readOnly: Bool
        public init(path: String, readOnly: Bool) {
            self.path = path
            self.readOnly = readOnly
        }
    }

    public init(boot: BootSource, memoryMiB: Int, vcpus: Int = 1, timeoutNanoseconds: UInt64? = nil) {
        self.boot = boot
        self.memoryMiB = memoryMiB
        self.vcpus = vcpus
        self.timeoutNanoseconds = timeoutNanoseconds
    }

    /// The same configuration without the image bytes, for keeping after the images are loaded
    /// (a kernel and initrd held for the whole run would be ~20 MiB of VMM overhead).
    func withoutImages() -> VMConfig {
        var copy = self
        switch boot {
        case .flat(_, let name, let mode, let argument):
            copy.boot = .flat(image: [], name: name, mode: mode, argument: argument)
        case .linux(let kernel, let initrd, let commandLine):
            copy.boot = .linux(kernel: InMemoryImage([], name: kernel.name), initrd: initrd.map { InMemoryImage([], name: $0.name) },
                               commandLine: commandLine)
        }
        return copy
    }

    public var isLinux: Bool {
        if case .linux = boot { return true }
        return false
    }

    /// Whether a Linux guest reboots by triple fault: the last `reboot=` of Tandem's base line
    /// (`reboot=k`: through the i8042, which ends the run) and the user's starts with `t`. Only
    /// then is a triple fault (KVM_EXIT_SHUTDOWN) the guest's reboot; otherwise the guest crashed.
    public var linuxRebootsByTripleFault: Bool {
        guard case .linux(_, _, let commandLine) = boot else { return false }
        let reboot = (GuestCommandLine.base(reboot: "k", pciOff: true) + " " + commandLine).split(separator: " ")
            .last { $0.hasPrefix("reboot=") }.map { $0.dropFirst("reboot=".count) }
        return reboot?.first == "t"
    }

    /// The longest --timeout taken: a year. (More is a typo, or "never", which is 0.)
    public static let maximumTimeoutSeconds: Double = 365 * 86_400

    /// Default RAM of a Linux guest (Firecracker's default is 128 MiB; the cloud kernel wants a bit more).
    public static let defaultLinuxMemoryMiB = 256
    /// Below this the cloud kernel cannot unpack itself and an initramfs.
    public static let minimumLinuxMemoryMiB = 64
    /// RAM up to here sits below the 32-bit MMIO hole; the rest is placed from 4 GiB up.
    public static let lowRAMLimit = 3 << 30

    /// Default RAM of a tiny guest: its page tables and image need a few hundred KiB; 16 MiB leaves
    /// room for `compute`'s sieve. Untouched RAM costs the host nothing.
    public static let defaultTinyMemoryMiB = 16
    /// The least RAM a tiny guest gets: the low 64 KiB hold GDT and page tables, then the image and stack.
    public static let minimumTinyMemoryMiB = 1
    public static let maximumTinyMemoryMiB = Int(TANDEM_TINY_MAX_RAM_MIB)
    /// Real mode reaches only the first MiB, and 0xa0000 upwards is the PC's video/ROM hole.
    public static let realModeImageLimit: UInt64 = 0xa0000
}
