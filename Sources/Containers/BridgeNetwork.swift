import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `tandem ctr run --net bridge`: the container gets `eth0` on Tandem's bridge, as Docker's
/// default network and podman's bridge give one — a veth pair whose host end is on the bridge
/// `tandembr0` (172.29.0.1/24 on the host) and whose other end is made straight in the
/// container's network namespace, an address from the bridge's /24 and a default route through
/// the host's end. Containers on the bridge reach each other and the host by address; what they
/// send elsewhere leaves with the host's address (outbound NAT), and `-p HOST:CONTAINER` publishes
/// a port on every host address (`BridgeFirewall`: nftables, made and deleted with the bridge).
/// The host forwards IPv4 from then on (`ip_forward`, which Docker and podman turn on too and
/// leave on: other networks may rely on it).
///
/// Leases: one file per address in `directory` (O_EXCL: never handed out twice), holding the
/// container's id, state directory and published ports, all changes under an flock; released
/// when the container ends (its veth goes with its network namespace), the bridge with the last
/// lease. A lease whose container's state
/// directory is gone (its tandem was SIGKILLed and swept, or never finished making it) is stale
/// and reclaimed by the next lease; `release(id:)` is what the sweep of a dead container calls.
public enum BridgeNetwork {
    public static let bridge = "tandembr0"
    /// The bridge's /24: the host is .1, containers .2 to .254.
    public static let subnetPrefix = "172.29.0."
    public static let gateway = subnetPrefix + "1"
    public static let prefixLength: Int32 = 24
    public static let subnet = subnetPrefix + "0/24"
    /// The leases and their lock (root only: the bridge is the host's).
    public static let directory = "/run/tandem-net"

    /// An address leased to a container, and the name of its veth's host end.
    public struct Lease: Sendable, Equatable {
        public var address: String
        public var hostInterface: String
        public var ports: [PublishedPort] = []
    }

    /// The host end of container `id`'s veth: "tv" and the id's first 12 digits (15 at most).
    static func hostInterface(for id: String) -> String { "tv" + id.prefix(12) }

    /// Leases an address for container `id` (whose state directory is `stateDirectory`) and
    /// reserves `ports` for it (published by `attach`), making the bridge when it is the first.
    /// A port another container publishes or a host program listens on, or no `nft`, fails
    /// before anything is made. Errors name what failed; nothing is left on failure. With
    /// `address`, that address or none (a restored VM's guest holds it in its RAM).
    public static func lease(for id: String, stateDirectory: String, ports: [PublishedPort] = [], address requested: String? = nil) throws(ContainerError) -> Lease {
        try locked { () throws(ContainerError) -> Lease in
            reclaimStale()
            guard BridgeFirewall.nft != nil else {
                throw ContainerError("--net bridge: nft is not installed (Debian's package nftables): the bridge's NAT and published ports need it")
            }
            var seen: [PublishedPort] = []
            let taken = leases().flatMap { holder in holder.ports.map { ($0, holder.id) } }
            for port in ports {
                if seen.contains(where: { $0.hostPort == port.hostPort && $0.transport == port.transport }) {
                    throw ContainerError("--publish \(port): host port \(port.hostPort)/\(port.transport.rawValue) is given twice")
                }
                seen.append(port)
                if let (_, holder) = taken.first(where: { $0.0.hostPort == port.hostPort && $0.0.transport == port.transport }) {
                    throw ContainerError("--publish \(port): host port \(port.hostPort)/\(port.transport.rawValue) is already published by container \(holder.prefix(12))")
                }
                if BridgeFirewall.inUse(port) {
                    throw ContainerError("--publish \(port): host port \(port.hostPort)/\(port.transport.rawValue) is in use by a program on this host")
                }
            }
            let hosts: [Int]
            if let requested {
                guard requested.hasPrefix(subnetPrefix), let host = Int(requested.dropFirst(subnetPrefix.count)), (2...254).contains(host),
                      requested == subnetPrefix + String(host) else {
                    throw ContainerError("--net bridge: \(requested) is not an address of the bridge's (\(subnetPrefix)2 to \(subnetPrefix)254)")
                }
                hosts = [host]
            } else {
                hosts = Array(2...254)
            }
            try ensureBridge()
            for host in hosts {
                let address = subnetPrefix + String(host)
                let fd = open(directory + "/" + address, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                guard fd >= 0 else {
                    if errno == EEXIST, requested != nil {
                        removeBridgeIfUnused()
                        throw ContainerError("--net bridge: \(address) is leased by another container or VM (the VM the snapshot was taken from, or another restore of it, still runs?)")
                    }
                    if errno == EEXIST { continue }
                    throw ContainerError(SystemError("open", directory + "/" + address).description)
                }
                let lines = [id, stateDirectory] + ports.map(\.description)
                let text = Array(lines.map { $0 + "\n" }.joined().utf8)
                let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                close(fd)
                guard written == text.count else {
                    unlink(directory + "/" + address)
                    removeBridgeIfUnused()
                    throw ContainerError(SystemError("write", directory + "/" + address).description)
                }
                return Lease(address: address, hostInterface: hostInterface(for: id), ports: ports)
            }
            removeBridgeIfUnused()
            throw ContainerError("--net bridge: the bridge's 253 addresses are all leased (\(directory))")
        }
    }

    /// Gives the container (its first process `pid`, in its own network namespace) `eth0` on the
    /// bridge: the veth pair, its host end on the bridge, the address and the default route; then
    /// its published ports (reserved by the lease; forwarded only from now on, so that a client
    /// knocking early is refused at once instead of waiting for an address nobody answers yet).
    public static func attach(_ lease: Lease, pid: pid_t) throws(ContainerError) {
        var result = clinux_veth_create(lease.hostInterface, "eth0", pid)
        guard result == 0 else { throw ContainerError(SystemError("RTM_NEWLINK veth", "\(lease.hostInterface) to eth0 of pid \(pid)", errno: -result).description) }
        result = clinux_bridge_attach(bridge, lease.hostInterface)
        guard result == 0 else { throw ContainerError(SystemError("SIOCBRADDIF", "\(lease.hostInterface) to \(bridge)", errno: -result).description) }
        result = clinux_netns_interface_up(pid, "eth0", lease.address, prefixLength, gateway)
        guard result == 0 else {
            throw ContainerError(SystemError("configure eth0", "\(lease.address)/\(prefixLength) via \(gateway) in pid \(pid)'s namespace", errno: -result).description)
        }
        // The address may have been leased moments ago to a container whose namespace the kernel
        // is still tearing down: the host would keep sending to that MAC (REACHABLE up to 45 s;
        // the new eth0's gratuitous ARP can be lost while its bridge port comes up). The next
        // packet asks again instead.
        _ = clinux_neighbour_forget(bridge, lease.address)
        try BridgeFirewall.publish(lease.ports, to: lease.address)
    }

    /// A VM's part of a lease (`tandem vm run --backend libvirt --net bridge`): its hypervisor
    /// makes the tap and puts it on the bridge; Tandem gives the guest a MAC fixed by its address
    /// (`guestMAC`) and the address on the kernel command line (`guestCommandLine`), and drops the
    /// host's ARP entry for the address, which may still name its last holder's MAC.
    public static func prepareGuest(_ lease: Lease) {
        _ = clinux_neighbour_forget(bridge, lease.address)
    }

    /// The MAC of the guest holding `address`: QEMU's prefix 52:54:00, then ac:1d (172.29) and
    /// the address's last byte — one address, one MAC, as libvirt's own networks do not promise.
    public static func guestMACBytes(for address: String) -> [UInt8] {
        [0x52, 0x54, 0x00, 0xac, 0x1d, UInt8(address.split(separator: ".").last ?? "") ?? 0]
    }

    public static func guestMAC(for address: String) -> String {
        guestMACBytes(for: address).map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":")
    }

    /// A microVM's tap (named `lease.hostInterface`) onto the bridge, up; and the host's ARP entry
    /// for the address dropped (`prepareGuest`). 0, or -errno.
    public static func attachTap(_ lease: Lease) -> Int32 {
        let result = clinux_bridge_attach(bridge, lease.hostInterface)
        if result == 0 { prepareGuest(lease) }
        return result
    }

    /// What tandem-init reads to configure eth0: `tandem.net=ADDRESS/24,GATEWAY`.
    public static func guestCommandLine(_ lease: Lease) -> String {
        "tandem.net=\(lease.address)/\(prefixLength),\(gateway)"
    }

    /// Leases whose holder's state directory is gone (a VM's tandem killed, its directory swept
    /// by the next run) are ended, and the bridge with the last of them.
    public static func sweepStale() {
        guard Files.kind(directory) == .directory else { return }
        try? locked { () throws(ContainerError) in
            reclaimStale()
            removeBridgeIfUnused()
        }
    }

    /// Ends container `id`'s lease (if it has one); the bridge goes with the last lease. A
    /// container that holds none (every `tandem-runtime delete` and sweep asks) touches neither
    /// the bridge nor its table: deleting an absent table still costs an `nft` run, ~20 ms here.
    public static func release(id: String) {
        guard Files.kind(directory) == .directory else { return }
        try? locked { () throws(ContainerError) in
            let held = leases().filter { $0.id == id }
            guard !held.isEmpty else { return }
            for holder in held { forget(holder) }
            // Its veth goes with its network namespace, which the kernel tears down in the
            // background (deleting the veth here would make the caller wait ~10 ms for it). Until
            // then its eth0 still answers ARP for the address, which the next lease may give to
            // another container: off the bridge with it now (an ioctl), so it answers nobody.
            _ = clinux_bridge_detach(bridge, hostInterface(for: id))
            removeBridgeIfUnused()
        }
    }

    /// The bridge address leased to container `id`, if it holds one (`tandem ctr inspect`).
    public static func address(of id: String) -> String? {
        leases().first { $0.id == id }?.address
    }

    /// One lease as its file says: the address, the container's id and state directory, the
    /// ports published to it.
    struct Holder {
        var address: String
        var id: String
        var state: String
        var ports: [PublishedPort]
    }

    /// The leases, as their files say.
    static func leases() -> [Holder] {
        var holders: [Holder] = []
        for name in Files.list(directory) where name.hasPrefix(subnetPrefix) {
            guard let text = Files.readText(directory + "/" + name) else { continue }
            let lines = text.split(separator: "\n").map(String.init)
            guard lines.count >= 2 else { continue }
            let ports = lines.dropFirst(2).compactMap { try? PublishedPort.parse($0) }
            holders.append(Holder(address: name, id: lines[0], state: lines[1], ports: ports))
        }
        return holders
    }

    /// Leases whose container's state directory is gone: their address is free again.
    static func reclaimStale() {
        for holder in leases() where Files.kind(holder.state) == .missing { forget(holder) }
    }

    /// Ends one lease: its published ports, then its file.
    static func forget(_ holder: Holder) {
        BridgeFirewall.unpublish(holder.ports)
        unlink(directory + "/" + holder.address)
    }

    /// The bridge, up with the host's address, and its nftables table. Both are set up by the
    /// first lease only: setting the address again on a bridge in use would flush its routes
    /// under the running containers, while a bridge nobody leases (one a killed run made and
    /// never finished) gets them again. An interface of that name that is not a bridge (not
    /// Tandem's) is an error.
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
        do throws(ContainerError) {
            // A published port reached from the host's loopback leaves through the bridge with
            // 127.0.0.1 as its source until it is masqueraded: allowed on this bridge only.
            do { try Files.write("/proc/sys/net/ipv4/conf/\(bridge)/route_localnet", Array("1\n".utf8)) } catch { throw ContainerError(error.description) }
            if Files.readText("/proc/sys/net/ipv4/ip_forward")?.hasPrefix("0") ?? true {
                do { try Files.write("/proc/sys/net/ipv4/ip_forward", Array("1\n".utf8)) } catch { throw ContainerError(error.description) }
            }
            try BridgeFirewall.create(bridge: bridge, subnet: subnet)
        } catch {
            removeBridgeIfUnused()
            throw error
        }
    }

    /// The bridge and its table, once no lease is left.
    static func removeBridgeIfUnused() {
        guard leases().isEmpty else { return }
        BridgeFirewall.delete()
        guard Files.kind("/sys/class/net/" + bridge + "/bridge") == .directory else { return }
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
