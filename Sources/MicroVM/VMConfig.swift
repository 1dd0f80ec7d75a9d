import GuestABI

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
}

/// Everything that describes one VM run.
public struct VMConfig: Sendable {
    public var boot: BootSource
    public var memoryMiB: Int
    /// Stop the guest after this many nanoseconds; nil runs until the guest ends.
    public var timeoutNanoseconds: UInt64?

    public init(boot: BootSource, memoryMiB: Int, timeoutNanoseconds: UInt64? = nil) {
        self.boot = boot
        self.memoryMiB = memoryMiB
        self.timeoutNanoseconds = timeoutNanoseconds
    }

    /// Default RAM of a tiny guest: its page tables and image need a few hundred KiB; 16 MiB leaves
    /// room for `compute`'s sieve. Untouched RAM costs the host nothing.
    public static let defaultTinyMemoryMiB = 16
    /// The least RAM a tiny guest gets: the low 64 KiB hold GDT and page tables, then the image and stack.
    public static let minimumTinyMemoryMiB = 1
    public static let maximumTinyMemoryMiB = Int(TANDEM_TINY_MAX_RAM_MIB)
    /// Real mode reaches only the first MiB, and 0xa0000 upwards is the PC's video/ROM hole.
    public static let realModeImageLimit: UInt64 = 0xa0000
}
