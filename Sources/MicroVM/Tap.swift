import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A tap interface a microVM's virtio-net sends and receives through (`--net tap[=NAME]`).
///
/// Without a name Tandem makes its own, `tandemN` with the lowest N free, gives the host side
/// 172.30.N.1/24 and the guest 172.30.N.2 (skipping a /24 the host already routes), so the host
/// reaches the guest over it at once. The tap is not persistent: it disappears when its last
/// descriptor closes — when the run ends, and also when the VMM is killed, so nothing is left
/// to sweep. With a name, Tandem attaches to that tap (or makes it) and configures nothing: the
/// network is the user's (a bridge, a router), and the guest's address comes from
/// `--cmdline tandem.net=ADDRESS/PREFIX[,GATEWAY]`.
public final class Tap: @unchecked Sendable {
    public let name: String
    public let fd: FileDescriptor
    /// The host's and the guest's addresses on a tap Tandem made (nil on a user's tap).
    public let hostAddress: String?
    public let guestAddress: String?
    /// Who made it and addresses it: Tandem (`--net tap`), the user (`--net tap=NAME`) or
    /// Tandem's bridge (`--net bridge`, a leased address).
    public enum Origin: Sendable { case tandem, user, bridge }
    public let origin: Origin
    public static let prefixLength = 24
    /// The /24s Tandem numbers its taps in: 172.30.N.0/24 for tandemN.
    static let subnetBase = "172.30"

    /// Called once when the tap is released (the run is over): what the tap's owner set up
    /// around it goes too (a bridge lease, `openOnBridge`).
    private let onRelease: (@Sendable () -> Void)?

    init(name: String, fd: FileDescriptor, origin: Origin, hostAddress: String?, guestAddress: String?, onRelease: (@Sendable () -> Void)? = nil) {
        self.name = name
        self.origin = origin
        self.fd = fd
        self.hostAddress = hostAddress
        self.guestAddress = guestAddress
        self.onRelease = onRelease
    }

    deinit { onRelease?() }

    /// A tap for a guest on a host bridge someone else addresses (`--net bridge`: Tandem's
    /// bridge): the tap `name` is made (not persistent: it goes with its last descriptor), and
    /// `attach` puts it on the bridge; the guest is told `guestAddress` with `gateway`. If
    /// anything fails, `onRelease` runs at once; otherwise when the tap is released.
    public static func openOnBridge(name: String, guestAddress: String, gateway: String, attach: () -> Int32,
                                    onRelease: @escaping @Sendable () -> Void) throws(SystemError) -> Tap {
        let raw = clinux_tap_open(name)
        guard raw >= 0 else {
            onRelease()
            throw SystemError("TUNSETIFF (tap)", name, errno: -raw)
        }
        let tap = Tap(name: name, fd: FileDescriptor(adopting: raw, label: "tap \(name)"), origin: .bridge, hostAddress: gateway, guestAddress: guestAddress,
                      onRelease: onRelease)
        let attached = attach()
        guard attached == 0 else { throw SystemError("SIOCBRADDIF", "\(name) to the bridge", errno: -attached) }  // (tap released: onRelease)
        return tap
    }

    /// What tandem-init is told on the kernel command line: the guest's address, prefix and
    /// gateway (nil on a user's tap).
    public var guestCommandLine: String? {
        guard let guestAddress, let hostAddress else { return nil }
        return "tandem.net=\(guestAddress)/\(Self.prefixLength),\(hostAddress)"
    }

    /// Opens the tap `name`, or makes the next free `tandemN` and configures it. Errors name the
    /// interface and the failing call (no /dev/net/tun, no CAP_NET_ADMIN, a bad name).
    public static func open(name: String?) throws(SystemError) -> Tap {
        if let name {
            guard !name.isEmpty, name.utf8.count < 16, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw SystemError("interface name", "\(name): 1 to 15 letters, digits, '-', '_' or '.'", errno: EINVAL)
            }
            let raw = clinux_tap_open(name)
            guard raw >= 0 else { throw SystemError("TUNSETIFF (tap)", name, errno: -raw) }
            return Tap(name: name, fd: FileDescriptor(adopting: raw, label: "tap \(name)"), origin: .user, hostAddress: nil, guestAddress: nil)
        }
        let routed = routedSubnets()
        for index in 0..<256 where !routed.contains("\(subnetBase).\(index).0") {
            let candidate = "tandem\(index)"
            let raw = clinux_tap_open(candidate)
            if raw == -EBUSY || raw == -EPERM && Files.kind("/sys/class/net/\(candidate)") != .missing { continue }  // another VM's
            guard raw >= 0 else { throw SystemError("TUNSETIFF (tap)", candidate, errno: -raw) }
            return try addressed(index: index, fd: FileDescriptor(adopting: raw, label: "tap \(candidate)"))
        }
        throw SystemError("--net tap", "no free tandemN interface in \(subnetBase).0.0/16", errno: EADDRINUSE)
    }

    /// The Tandem tap `tandemN` made again with its addresses, for a restored guest whose RAM
    /// holds 172.30.N.2 and routes through 172.30.N.1. Refused, by name, while another VM holds
    /// the tap (the one the snapshot was taken from, or another restore of it) or while the host
    /// routes that /24 through another interface.
    public static func reopen(tandemIndex index: Int) throws(SystemError) -> Tap {
        let name = "tandem\(index)"
        let raw = clinux_tap_open(name)
        if raw == -EBUSY || raw == -EPERM && Files.kind("/sys/class/net/\(name)") != .missing {
            throw SystemError("TUNSETIFF (tap)", "\(name) is in use: the VM the snapshot was taken from, or another restore of it, still runs with \(subnetBase).\(index).2", errno: EBUSY)
        }
        guard raw >= 0 else { throw SystemError("TUNSETIFF (tap)", name, errno: -raw) }
        let fd = FileDescriptor(adopting: raw, label: "tap \(name)")
        guard !routedSubnets().contains("\(subnetBase).\(index).0") else {
            throw SystemError("--net tap", "\(subnetBase).\(index).0/24 is routed through another interface on this host, so \(name) cannot have it", errno: EADDRINUSE)
        }
        return try addressed(index: index, fd: fd)
    }

    /// `tandemN` on `fd` given the host's address 172.30.N.1/24 and brought up.
    private static func addressed(index: Int, fd: FileDescriptor) throws(SystemError) -> Tap {
        let name = "tandem\(index)", host = "\(subnetBase).\(index).1"
        let result = clinux_interface_up(name, host, Int32(prefixLength))
        guard result == 0 else { throw SystemError("SIOCSIFADDR/SIOCSIFFLAGS", "\(name) \(host)/\(prefixLength)", errno: -result) }
        return Tap(name: name, fd: fd, origin: .tandem, hostAddress: host, guestAddress: "\(subnetBase).\(index).2")
    }

    /// Destinations of the host's IPv4 routes (/proc/net/route, little-endian hex), dotted.
    static func routedSubnets() -> Set<String> {
        var subnets: Set<String> = []
        for line in (Files.readText("/proc/net/route") ?? "").split(separator: "\n").dropFirst() {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count > 2, let destination = UInt32(fields[1], radix: 16) else { continue }
            subnets.insert((0..<4).map { String(destination >> (8 * $0) & 0xff) }.joined(separator: "."))
        }
        return subnets
    }

    /// A MAC address for a guest: locally administered, unicast (02:...), the rest random.
    public static func randomMAC() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[0] = 0x02
        return bytes
    }
}
