import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A port published with `tandem ctr run -p HOST:CONTAINER[/tcp|udp]`: connections to HOST on
/// any of the host's addresses reach CONTAINER on the container's bridge address (DNAT), as
/// Docker's and podman's `-p` do.
public struct PublishedPort: Sendable, Equatable, CustomStringConvertible {
    public enum Transport: String, Sendable { case tcp, udp }
    public var hostPort: UInt16
    public var containerPort: UInt16
    public var transport: Transport

    public init(hostPort: UInt16, containerPort: UInt16, transport: Transport = .tcp) {
        self.hostPort = hostPort
        self.containerPort = containerPort
        self.transport = transport
    }

    /// `HOST:CONTAINER[/tcp|udp]`, ports 1–65535; errors name the text and what is wrong.
    public static func parse(_ text: String) throws(ContainerError) -> PublishedPort {
        var ports = Substring(text)
        var transport = Transport.tcp
        if let slash = text.firstIndex(of: "/") {
            guard let named = Transport(rawValue: String(text[text.index(after: slash)...])) else {
                throw ContainerError("--publish \(text): the protocol must be tcp or udp")
            }
            transport = named
            ports = text[..<slash]
        }
        let parts = ports.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 3 {
            throw ContainerError("--publish \(text): a host address is not supported (the port is published on every address of the host): use HOST:CONTAINER")
        }
        guard parts.count == 2 else { throw ContainerError("--publish \(text): must be HOST:CONTAINER[/tcp|udp], as 8080:80") }
        func port(_ part: Substring, _ which: String) throws(ContainerError) -> UInt16 {
            guard part.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt16(part), value >= 1 else {
                throw ContainerError("--publish \(text): the \(which) port '\(part)' must be a number from 1 to 65535")
            }
            return value
        }
        return PublishedPort(hostPort: try port(parts[0], "host"), containerPort: try port(parts[1], "container"), transport: transport)
    }

    /// As the user writes it: `8080:80/tcp`.
    public var description: String { "\(hostPort):\(containerPort)/\(transport.rawValue)" }
}

/// The bridge's nftables rules, through Debian's `nft` (as podman's netavark drives it): one
/// table `ip tandem`, made with the bridge and deleted with it, holding
/// - outbound NAT: what a container sends off the bridge leaves with the host's address (masquerade);
/// - published ports: a map `ports` of (protocol, host port) → (container address, port),
///   looked up for packets to any local address, arriving (prerouting: other hosts, other
///   namespaces) or made here (output: the host's own clients, 127.0.0.1 included);
/// - hairpin: a published port reached from the host's loopback or from a container on the
///   bridge is masqueraded too, so the answer comes back the way the question went.
/// A port is one map element, added with `create` (an element that exists is an error: a port is
/// never published twice) and deleted when its container's lease ends.
enum BridgeFirewall {
    static let table = "ip tandem"

    /// Where `nft` is, or nil when nftables is not installed.
    static var nft: String? {
        ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"].first { access($0, X_OK) == 0 }
    }

    /// The table, made anew (an old one a killed run left is replaced in the same transaction).
    static func create(bridge: String, subnet: String) throws(ContainerError) {
        try run("""
        table \(table)
        delete table \(table)
        table \(table) {
          map ports { type inet_proto . inet_service : ipv4_addr . inet_service; }
          chain prerouting { type nat hook prerouting priority dstnat; policy accept;
            fib daddr type local dnat ip to meta l4proto . th dport map @ports; }
          chain output { type nat hook output priority -100; policy accept;
            fib daddr type local dnat ip to meta l4proto . th dport map @ports; }
          chain postrouting { type nat hook postrouting priority srcnat; policy accept;
            ip saddr \(subnet) oifname != "\(bridge)" masquerade;
            oifname "\(bridge)" ct status dnat ip saddr { 127.0.0.0/8, \(subnet) } masquerade; }
        }
        """, what: "the table \(table)")
    }

    /// Deletes the table (and with it every published port), if there is one.
    static func delete() {
        try? run("table \(table)\ndelete table \(table)", what: "deleting \(table)")
    }

    /// Publishes `ports` to `address`: all or none (one transaction). An element that exists
    /// (the port is published already) fails it.
    static func publish(_ ports: [PublishedPort], to address: String) throws(ContainerError) {
        guard !ports.isEmpty else { return }
        let elements = ports.map { "\($0.transport.rawValue) . \($0.hostPort) : \(address) . \($0.containerPort)" }
        try run("create element \(table) ports { \(elements.joined(separator: ", ")) }",
                what: "publishing \(ports.map(\.description).joined(separator: " "))")
        forgetConnections(ports)
    }

    /// Removes `ports` (each on its own: one already gone does not keep the others).
    static func unpublish(_ ports: [PublishedPort]) {
        for port in ports {
            try? run("delete element \(table) ports { \(port.transport.rawValue) . \(port.hostPort) }", what: "unpublishing \(port)")
        }
        forgetConnections(ports)
    }

    /// Drops the kernel's connection-tracking entries to these host ports when they are UDP (as
    /// Docker's libnetwork and kube-proxy do): NAT is decided at a flow's first packet, and a UDP
    /// client that sent before the port was published (no NAT) or to its last container (DNAT to
    /// an address now gone) keeps its entry alive, and with it the old decision, for as long as
    /// it keeps sending. TCP needs no flush (a refused or dead connection is not reused; measured:
    /// 40 restarts with a client knocking every millisecond, none delayed), and a dump of a busy
    /// table costs ~10 ms. Best effort: a host without ctnetlink keeps them.
    static func forgetConnections(_ ports: [PublishedPort]) {
        for port in ports where port.transport == .udp { _ = clinux_conntrack_forget(Int32(IPPROTO_UDP), port.hostPort) }
    }

    /// Runs `script` as `nft`'s command line (one transaction); its first error line names what failed.
    static func run(_ script: String, what: String) throws(ContainerError) {
        guard let nft else { throw ContainerError("--net bridge: nft is not installed (Debian's nftables): NAT and published ports need it") }
        let result: Subprocess.Result
        do { result = try Subprocess.run(nft, [script]) } catch { throw ContainerError(error.description) }
        guard result.status == 0 else {
            let first = result.output.split(separator: "\n").first.map(String.init) ?? "exit status \(result.status)"
            throw ContainerError("nft, \(what): \(first)")
        }
    }

    /// Whether something on the host listens on `port` already (a bind with SO_REUSEADDR fails
    /// only then): its connections would go to the container instead, so publishing is refused,
    /// as Docker's proxy refuses a port in use.
    static func inUse(_ port: PublishedPort) -> Bool {
        let sock = socket(AF_INET, Int32(port.transport == .tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard sock >= 0 else { return false }
        defer { close(sock) }
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.hostPort.bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound != 0 && errno == EADDRINUSE
    }
}
