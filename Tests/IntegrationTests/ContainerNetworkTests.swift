import Foundation
import Testing

/// `tandem ctr run --net bridge` on this host's real bridge, veths and network namespaces. One
/// test at a time: they share the bridge, whose absence after each run is checked.
@Suite("tandem ctr run --net bridge: eth0 on Tandem's bridge", .serialized,
       .enabled(if: Containers.available, "needs root and the image rootfs (make image)"))
struct ContainerNetworkTests {
    static let bridge = "tandembr0"
    static let leases = "/run/tandem-net"

    /// The host's interfaces whose names start with `prefix`.
    static func interfaces(_ prefix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).filter { $0.hasPrefix(prefix) }
    }

    /// Nothing of the bridge network is left: no bridge, no veth host end, no lease. (A veth goes
    /// with its network namespace, which the kernel tears down in the background: up to 2 s.)
    static func expectNothingLeft(sourceLocation: SourceLocation = #_sourceLocation) {
        for _ in 0..<40 where !interfaces("tv").isEmpty { Thread.sleep(forTimeInterval: 0.05) }
        #expect(interfaces(bridge).isEmpty, "the bridge outlived its last container", sourceLocation: sourceLocation)
        #expect(interfaces("tv").isEmpty, "a veth is left: \(interfaces("tv"))", sourceLocation: sourceLocation)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: leases)) ?? []).filter { $0 != "lock" }
        #expect(files.isEmpty, "leases left: \(files)", sourceLocation: sourceLocation)
    }

    /// A TCP listener on the bridge's host address once it exists (the first container makes it);
    /// the first line a client sends, and the client's address.
    static func accept(port: UInt16, within seconds: Double = 15) -> (line: String, peer: String)? {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(sock) }
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian, sin_addr: in_addr(s_addr: inet_addr("172.29.0.1")), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
        let deadline = Date().addingTimeInterval(seconds)
        while withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) != 0 {
            guard Date() < deadline else { return nil }
            Thread.sleep(forTimeInterval: 0.02)
        }
        guard Glibc.listen(sock, 4) == 0 else { return nil }
        var timeout = timeval(tv_sec: Int(seconds), tv_usec: 0)
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var peer = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let client = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(sock, $0, &length) } }
        guard client >= 0 else { return nil }
        defer { close(client) }
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
        return (String(decoding: buffer[..<max(count, 0)], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines), String(cString: inet_ntoa(peer.sin_addr)))
    }

    /// A shell loop that sends `text` to HOST:PORT with busybox nc until it is taken (20 s).
    static func sendScript(_ text: String, to host: String, port: Int) -> String {
        "i=0; while [ $i -lt 100 ]; do echo \(text) | nc -w 2 \(host) \(port) 2>/dev/null && exit 0; i=$((i+1)); sleep 0.2; done; exit 1"
    }

    @Test("eth0 has an address of the bridge's /24 and a default route through the host's 172.29.0.1; the host gets what the container sends, from that address; afterwards no bridge, veth or lease")
    func hostReachesContainer() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let listener = Background { Self.accept(port: 7071) }
        let (result, report) = try Containers.run(["--net", "bridge", "--", "/bin/sh", "-c",
                                                   "ip -4 addr show eth0; ip route; " + Self.sendScript("hello-bridge", to: "172.29.0.1", port: 7071)], state: state)
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("inet 172.29.0.") && result.stdout.contains("/24"), "\(result.stdout)")
        #expect(result.stdout.contains("default via 172.29.0.1 dev eth0"), "\(result.stdout)")
        let received = try #require(listener.wait(), "the host's listener got nothing")
        #expect(received.line == "hello-bridge" && received.peer.hasPrefix("172.29.0."), "\(received)")
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
        Self.expectNothingLeft()
    }

    @Test("a bridge a killed run made and never addressed (nobody leases it) gets its address from the next lease: the host is reached")
    func unaddressedBridgeRepaired() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let made = try TestTools.run("/usr/sbin/ip", ["link", "add", Self.bridge, "type", "bridge"])
        try #require(made.status == 0, "ip link add: \(made.stdout)")
        let listener = Background { Self.accept(port: 7072, within: 10) }
        let (result, _) = try Containers.run(["--net", "bridge", "--", "/bin/sh", "-c", Self.sendScript("repaired", to: "172.29.0.1", port: 7072)], state: state)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(listener.wait()?.line == "repaired")
        Self.expectNothingLeft()
    }

    @Test("two containers at once get two addresses and reach each other; the bridge goes with the second")
    func containersReachEachOther() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let server = try Containers.ctr(["run", "-d", "--net", "bridge", "--", "/bin/sh", "-c",
                                         "ip -4 -o addr show eth0 > /tmp/addr; nc -l -p 9000 > /tmp/got; sleep 30"], state: state)
        #expect(server.status == 0, "\(server.stderr)")
        let id = server.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Containers.ctr(["rm", "-f", id], state: state) }
        var serverAddress = ""
        for _ in 0..<100 where serverAddress.isEmpty {
            let shown = try Containers.ctr(["exec", id, "--", "/bin/cat", "/tmp/addr"], state: state).stdout
            if let range = shown.range(of: #"172\.29\.0\.[0-9]+"#, options: .regularExpression) { serverAddress = String(shown[range]) }
            if serverAddress.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        }
        try #require(!serverAddress.isEmpty, "the first container shows no address")
        let client = try Containers.run(["--net", "bridge", "--", "/bin/sh", "-c",
                                         "ip -4 -o addr show eth0; " + Self.sendScript("hello-neighbour", to: serverAddress, port: 9000)], state: state)
        #expect(client.result.status == 0, "\(client.result.stdout) \(client.result.stderr)")
        #expect(!client.result.stdout.contains(serverAddress + "/"), "the same address twice: \(client.result.stdout)")
        var got = ""
        for _ in 0..<50 where got.isEmpty {
            got = try Containers.ctr(["exec", id, "--", "/bin/cat", "/tmp/got"], state: state).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if got.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(got == "hello-neighbour")
        #expect(!Self.interfaces(Self.bridge).isEmpty, "the bridge is still there while the first container runs")
        let removed = try Containers.ctr(["rm", "-f", id], state: state)
        #expect(removed.status == 0, "\(removed.stderr)")
        Self.expectNothingLeft()
    }

    @Test("tandem SIGKILLed while its container runs: the next run sweeps the container, its lease and the bridge")
    func killedMonitorSwept() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["ctr", "run", "--state-root", state, "--net", "bridge", "--", "/bin/sleep", "60"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var leased = false
        for _ in 0..<200 where !leased {
            Thread.sleep(forTimeInterval: 0.05)
            leased = !Self.interfaces("tv").isEmpty
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(leased, "the container never got its veth")
        let next = try Containers.run(["--", "/bin/true"], state: state)
        #expect(next.result.status == 0, "\(next.result.stderr)")
        Self.expectNothingLeft()
    }

    @Test("refused by name, nothing made: an unknown --net, and an interface called tandembr0 that is not a bridge")
    func refusals() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let unknown = try Containers.run(["--net", "host2", "--", "/bin/true"], state: state).result
        #expect(unknown.status == 125 && unknown.stderr.contains("--net host2: must be none, loopback or bridge"), "\(unknown.stderr)")
        // A veth pair squatting on the name.
        let made = try TestTools.run("/usr/sbin/ip", ["link", "add", Self.bridge, "type", "veth", "peer", "name", "tandemsquat"])
        try #require(made.status == 0, "ip link add: \(made.stdout)")
        defer { _ = try? TestTools.run("/usr/sbin/ip", ["link", "delete", Self.bridge]) }
        let refused = try Containers.run(["--net", "bridge", "--", "/bin/true"], state: state).result
        #expect(refused.status != 0 && refused.stderr.contains("tandembr0 exists and is not a bridge"), "\(refused.stderr)")
        #expect(Self.interfaces("tv").isEmpty, "a veth was made anyway")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: Self.leases)) ?? []).filter { $0 != "lock" }.isEmpty, "a lease was taken anyway")
    }
}

/// A value computed on a thread of its own while the test runs a process.
final class Background<Value>: @unchecked Sendable {
    private var value: Value?
    private let done = DispatchSemaphore(value: 0)
    init(_ work: @escaping @Sendable () -> Value) {
        Thread { [self] in
            value = work()
            done.signal()
        }.start()
    }
    func wait() -> Value {
        done.wait()
        return value!
    }
}
