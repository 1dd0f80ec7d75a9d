import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `tandem ctr run --net bridge`: the container gets `eth0` on Tandem's bridge, as Docker's
/// default network and podman's bridge give one — a veth pair whose host end is on the bridge
/// `tandembr0` (172.29.0.1/24 on the host) and whose other end is made straight in the
/// container's network namespace, an address from the bridge's /24 and a default route through
/// the host's end. Containers on the bridge reach each other and the host by address.
///
/// Leases: one file per address in `directory` (O_EXCL: never handed out twice), holding the
/// container's id, all changes under an flock; released when the container ends (its veth goes
/// with its network namespace), the bridge with the last lease. A lease whose container's state
/// directory is gone (its tandem was SIGKILLed and swept, or never finished making it) is stale
/// and reclaimed by the next lease; `release(id:)` is what the sweep of a dead container calls.
///
/// Not yet (issue 17): outbound NAT and published ports (nftables), VMs on the same bridge.
public enum BridgeNetwork {
    public static let bridge = "tandembr0"
    /// The bridge's /24: the host is .1, containers .2 to .254.
    public static let subnetPrefix = "172.29.0."
    public static let gateway = subnetPrefix + "1"
    public static let prefixLength: Int32 = 24
    /// The leases and their lock (root only: the bridge is the host's).
    public static let directory = "/run/tandem-net"

    /// An address leased to a container, and the name of its veth's host end.
    public struct Lease: Sendable, Equatable {
        public var address: String
        public var hostInterface: String
    }

    /// The host end of container `id`'s veth: "tv" and the id's first 12 digits (15 at most).
    static func hostInterface(for id: String) -> String { "tv" + id.prefix(12) }

    /// Leases an address for container `id` (whose state directory is `stateDirectory`), making
    /// the bridge when it is the first. Errors name what failed; nothing is left on failure.
    public static func lease(for id: String, stateDirectory: String) throws(ContainerError) -> Lease {
        try locked { () throws(ContainerError) -> Lease in
            reclaimStale()
            try ensureBridge()
            for host in 2...254 {
                let address = subnetPrefix + String(host)
                let fd = open(directory + "/" + address, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    if errno == EEXIST { continue }
                    throw ContainerError(SystemError("open", directory + "/" + address).description)
                }
                let text = Array((id + "\n" + stateDirectory + "\n").utf8)
                _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                return Lease(address: address, hostInterface: hostInterface(for: id))
            }
            removeBridgeIfUnused()
            throw ContainerError("--net bridge: the bridge's 253 addresses are all leased (\(directory))")
        }
    }

    /// Gives the container (its first process `pid`, in its own network namespace) `eth0` on the
    /// bridge: the veth pair, its host end on the bridge, the address and the default route.
    public static func attach(_ lease: Lease, pid: pid_t) throws(ContainerError) {
        var result = clinux_veth_create(lease.hostInterface, "eth0", pid)
        guard result == 0 else { throw ContainerError(SystemError("RTM_NEWLINK veth", "\(lease.hostInterface) to eth0 of pid \(pid)", errno: -result).description) }
        result = clinux_bridge_attach(bridge, lease.hostInterface)
        guard result == 0 else { throw ContainerError(SystemError("SIOCBRADDIF", "\(lease.hostInterface) to \(bridge)", errno: -result).description) }
        result = clinux_netns_interface_up(pid, "eth0", lease.address, prefixLength, gateway)
        guard result == 0 else {
            throw ContainerError(SystemError("configure eth0", "\(lease.address)/\(prefixLength) via \(gateway) in pid \(pid)'s namespace", errno: -result).description)
        }
    }

    /// Ends container `id`'s lease (if it has one); the bridge goes with the last lease.
    public static func release(id: String) {
        guard Files.kind(directory) == .directory else { return }
        try? locked { () throws(ContainerError) in
            for holder in leases() where holder.id == id { unlink(directory + "/" + holder.address) }
            // Its veth goes with its network namespace (the kernel tears that down in the
            // background; deleting it here would make the caller wait ~10 ms for it).
            removeBridgeIfUnused()
        }
    }

    /// One lease as its file says: the address, the container's id and state directory.
    struct Holder {
        var address: String
        var id: String
        var state: String
    }

    /// The leases, as their files say.
    static func leases() -> [Holder] {
        var holders: [Holder] = []
        for name in Files.list(directory) where name.hasPrefix(subnetPrefix) {
            guard let text = Files.readText(directory + "/" + name) else { continue }
            let lines = text.split(separator: "\n").map(String.init)
            if lines.count == 2 { holders.append(Holder(address: name, id: lines[0], state: lines[1])) }
        }
        return holders
    }

    /// Leases whose container's state directory is gone: their address is free again.
    static func reclaimStale() {
        for holder in leases() where Files.kind(holder.state) == .missing {
            unlink(directory + "/" + holder.address)
        }
    }

    /// The bridge, up with the host's address. The address is given by the first lease only:
    /// setting it again on a bridge in use would flush its routes under the running containers,
    /// while a bridge nobody leases (one a killed run made and never addressed) gets it again. An
    /// interface of that name that is not a bridge (not Tandem's) is an error.
    static func ensureBridge() throws(ContainerError) {
        let sysfs = "/sys/class/net/" + bridge
        if Files.kind(sysfs) != .missing {
            guard Files.kind(sysfs + "/bridge") == .directory else {
                throw ContainerError("--net bridge: \(bridge) exists and is not a bridge (not Tandem's): remove it or free the name")
            }
            guard leases().isEmpty else { return }
        } else {
            let made = clinux_bridge_add(bridge)
            guard made == 0 || made == -EEXIST else { throw ContainerError(SystemError("SIOCBRADDBR", bridge, errno: -made).description) }
        }
        let up = clinux_interface_up(bridge, gateway, prefixLength)
        guard up == 0 else {
            removeBridgeIfUnused()
            throw ContainerError(SystemError("configure", "\(bridge) \(gateway)/\(prefixLength)", errno: -up).description)
        }
    }

    static func removeBridgeIfUnused() {
        guard leases().isEmpty, Files.kind("/sys/class/net/" + bridge + "/bridge") == .directory else { return }
        _ = clinux_bridge_delete(bridge)
    }

    /// Runs `body` holding the leases' lock (made with its directory).
    static func locked<T>(_ body: () throws(ContainerError) -> T) throws(ContainerError) -> T {
        if Files.kind(directory) == .missing, mkdir(directory, 0o700) != 0, errno != EEXIST {
            throw ContainerError(SystemError("mkdir", directory).description)
        }
        let fd = open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ContainerError(SystemError("open", directory + "/lock").description) }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw ContainerError(SystemError("flock", directory + "/lock").description) }
        return try body()
    }
}
