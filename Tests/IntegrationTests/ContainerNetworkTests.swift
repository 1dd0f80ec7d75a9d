import Foundation
import Testing

/// `tandem ctr run --net bridge` on this host's real bridge, veths and network namespaces. One
/// test at a time: they share the bridge, whose absence after each run is checked.
@Suite("tandem ctr run --net bridge: eth0 on Tandem's bridge", .serialized,
       .enabled(if: Containers.available, "needs root and the image rootfs (make image)"))
struct ContainerNetworkTests {
    static let bridge = "tandembr0"
    static let leases = "/run/tandem-net"
    static let subnetPrefix = "172.29.0."

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
        let table = try? TestTools.run("/usr/sbin/nft", ["list", "table", "ip", "tandem"])
        #expect(table?.status != 0, "the nftables table outlived the bridge: \(table?.stdout ?? "")", sourceLocation: sourceLocation)
    }

    /// An idle detached container on the bridge (its id), so that the bridge and its table stay
    /// while the test's own containers come and go; the caller removes it.
    static func holdBridge(state: String) throws -> String {
        let holder = try Containers.ctr(["run", "-d", "--net", "bridge", "--", "/bin/sleep", "60"], state: state)
        try #require(holder.status == 0, "\(holder.stderr)")
        return holder.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The ports published in Tandem's nftables map (empty when there is no table).
    static func publishedElements() -> String {
        guard let listed = try? TestTools.run("/usr/sbin/nft", ["list", "map", "ip", "tandem", "ports"]), listed.status == 0 else { return "" }
        return listed.stdout.components(separatedBy: "elements = ").dropFirst().first ?? ""
    }

    /// `GET /index.html` from HOST:PORT over TCP, retried until it answers (the server may still be
    /// starting) or `seconds` pass; the response's body, or nil.
    static func fetch(_ host: String, port: UInt16, within seconds: Double = 15) -> String? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(sock) }
            var timeout = timeval(tv_sec: 3, tv_usec: 0)
            setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian, sin_addr: in_addr(s_addr: inet_addr(host)), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            let connected = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if connected == 0 {
                let request = Array("GET /index.html HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
                _ = request.withUnsafeBytes { send(sock, $0.baseAddress, $0.count, 0) }
                var response = [UInt8]()
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = buffer.withUnsafeMutableBytes { recv(sock, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    response += buffer[..<count]
                }
                let text = String(decoding: response, as: UTF8.self)
                if let body = text.range(of: "\r\n\r\n") { return String(text[body.upperBound...]).trimmingCharacters(in: .whitespacesAndNewlines) }
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return nil
    }

    /// A redis PING to HOST:PORT, retried for up to `seconds` until it is answered; the answer.
    static func redisPing(_ host: String, port: UInt16, within seconds: Double = 10) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        var answer = ""
        while !answer.hasPrefix("+PONG") && Date() < deadline {
            let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: port.bigEndian, sin_addr: in_addr(s_addr: inet_addr(host)), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 {
                let ping = Array("PING\r\n".utf8)
                _ = ping.withUnsafeBytes { send(sock, $0.baseAddress, $0.count, 0) }
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = buffer.withUnsafeMutableBytes { recv(sock, $0.baseAddress, $0.count, 0) }
                answer = String(decoding: buffer[..<max(count, 0)], as: UTF8.self)
            }
            close(sock)
            if !answer.hasPrefix("+PONG") { Thread.sleep(forTimeInterval: 0.1) }
        }
        return answer
    }

    /// A network namespace standing for "elsewhere": a veth pair, the host's end 198.51.100.1/24,
    /// the namespace's 198.51.100.2/24 (TEST-NET-2: nothing leaves this machine). It has no route
    /// to the bridge's /24, so a container reaches it only through the outbound NAT, and its
    /// clients reach a container only through a published port.
    struct Outside {
        static let namespace = "tandem-test-out"
        static let hostAddress = "198.51.100.1"
        static let address = "198.51.100.2"

        init() throws {
            Self.remove()
            for command in [["netns", "add", Self.namespace], ["link", "add", "ttout0", "type", "veth", "peer", "name", "ttout1", "netns", Self.namespace],
                            ["addr", "add", Self.hostAddress + "/24", "dev", "ttout0"], ["link", "set", "ttout0", "up"],
                            ["-n", Self.namespace, "addr", "add", Self.address + "/24", "dev", "ttout1"],
                            ["-n", Self.namespace, "link", "set", "ttout1", "up"], ["-n", Self.namespace, "link", "set", "lo", "up"]] {
                let done = try TestTools.run("/usr/sbin/ip", command)
                try #require(done.status == 0, "ip \(command.joined(separator: " ")): \(done.stdout) \(done.stderr)")
            }
        }

        /// `COMMAND` run inside the namespace (ip netns exec).
        func run(_ command: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
            try TestTools.run("/usr/sbin/ip", ["netns", "exec", Self.namespace] + command)
        }

        static func remove() {
            _ = try? TestTools.run("/usr/sbin/ip", ["netns", "delete", namespace])
            _ = try? TestTools.run("/usr/sbin/ip", ["link", "delete", "ttout0"])
        }
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

    /// A shell loop that listens on PORT with busybox nc until a client brings something, which goes
    /// to `file`. nc's stdin is `input`, a FIFO opened read-write, which never ends: on the end of
    /// its stdin busybox nc half-closes the connection, and a client that sees that FIN before its
    /// own stdin has anything to send exits 0 having sent nothing.
    static func listenScript(port: Int, into file: String, input: String) -> String {
        "while [ ! -s \(file) ]; do nc -l -p \(port) <> \(input) > \(file); done"
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
                                         "ip -4 -o addr show eth0 > /tmp/addr; mkfifo /tmp/in; " + Self.listenScript(port: 9000, into: "/tmp/got", input: "/tmp/in") + "; sleep 30"], state: state)
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
        var shown: Tandem.Result?
        for _ in 0..<250 where got.isEmpty {  // up to 25 s: the client retries for 20 s on a loaded host
            let exec = try Containers.ctr(["exec", id, "--", "/bin/cat", "/tmp/got"], state: state)
            shown = exec
            got = exec.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            if got.isEmpty { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(got == "hello-neighbour", "the last exec: \(String(describing: shown)); the client: \(client.result.stdout) \(client.result.stderr)")
        #expect(!Self.interfaces(Self.bridge).isEmpty, "the bridge is still there while the first container runs")
        let removed = try Containers.ctr(["rm", "-f", id], state: state)
        #expect(removed.status == 0, "\(removed.stderr)")
        Self.expectNothingLeft()
    }

    /// The interfaces on Tandem's bridge.
    static func bridgePorts() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net/\(bridge)/brif")) ?? []
    }

    @Test("tandem vm run --net bridge (Tandem's VMM, a tiny guest): its tap is on the bridge with a leased address while it runs; at its end (--timeout) no tap, lease or bridge",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/kvm"), "needs /dev/kvm"))
    func microVMOnBridge() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["vm", "run", "--tiny", "spin", "--net", "bridge", "--timeout", "3"]
        process.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        process.standardError = err
        try process.run()
        var ports: [String] = []
        for _ in 0..<200 where ports.isEmpty {
            Thread.sleep(forTimeInterval: 0.01)
            ports = Self.bridgePorts().filter { $0.hasPrefix("tvvm") }
        }
        let leased = ((try? FileManager.default.contentsOfDirectory(atPath: Self.leases)) ?? []).filter { $0.hasPrefix(Self.subnetPrefix) }
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(ports.count == 1, "the VM's tap is not on the bridge: \(ports) \(said)")
        #expect(leased.count == 1 && said.contains("the guest is \(leased.first ?? "?") on tandembr0"), "\(leased) \(said)")
        #expect(process.terminationStatus == 124, "\(said)")
        Self.expectNothingLeft()
    }

    @Test("tandem vm run --net bridge SIGKILLed: its tap goes with it; the next --net bridge run ends the stale lease, and the bridge goes at its end",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/kvm"), "needs /dev/kvm"))
    func killedMicroVMOnBridge() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["vm", "run", "--tiny", "spin", "--net", "bridge", "--timeout", "60"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 where Self.bridgePorts().filter({ $0.hasPrefix("tvvm") }).isEmpty { Thread.sleep(forTimeInterval: 0.01) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let stale = ((try? FileManager.default.contentsOfDirectory(atPath: Self.leases)) ?? []).filter { $0.hasPrefix(Self.subnetPrefix) }
        try #require(stale.count == 1, "the killed run had no lease yet: \(stale)")
        let next = try Tandem.run(["vm", "run", "--tiny", "hello", "--net", "bridge"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stderr.contains("the guest is \(stale[0]) on tandembr0"), "the stale lease's address was not given again: \(next.stderr)")
        Self.expectNothingLeft()
    }

    @Test("a microVM on the bridge snapshotted: a restore while it runs is refused by its address; after it ends the restore has the same tap on the bridge and the same lease, and leaves nothing",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/kvm"), "needs /dev/kvm"))
    func snapshotOnBridge() throws {
        let directory = "/tmp/tandem-snapbridge-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let socket = directory + "/vm.sock", snapshot = directory + "/snap"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["vm", "run", "--tiny", "ticker", "--arg", "100000000", "--net", "bridge", "--api-sock", socket, "--timeout", "60"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: socket) { Thread.sleep(forTimeInterval: 0.01) }
        let taken = try Tandem.run(["vm", "snapshot", socket, "--out", snapshot], killAfter: 30)
        let ports = Self.bridgePorts().filter { $0.hasPrefix("tvvm") }
        let leased = ((try? FileManager.default.contentsOfDirectory(atPath: Self.leases)) ?? []).filter { $0.hasPrefix(Self.subnetPrefix) }
        let whileHeld = try Tandem.run(["vm", "restore", snapshot, "--timeout", "1"], killAfter: 30)
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(taken.status == 0 && taken.stdout.contains("\"address\": \"\(leased.first ?? "?")\""), "\(taken.stdout) \(taken.stderr)")
        try #require(ports.count == 1 && leased.count == 1, "\(ports) \(leased)")
        #expect(whileHeld.status == 125 && whileHeld.stderr.contains("\(leased[0]) is leased by another container or VM"), "\(whileHeld.stderr)")

        let restore = Process()
        restore.executableURL = URL(fileURLWithPath: Tandem.path)
        restore.arguments = ["vm", "restore", snapshot, "--timeout", "2"]
        restore.standardOutput = FileHandle.nullDevice
        restore.standardError = FileHandle.nullDevice
        try restore.run()
        var again: [String] = []
        for _ in 0..<300 where again.isEmpty {
            Thread.sleep(forTimeInterval: 0.01)
            again = Self.bridgePorts().filter { $0.hasPrefix("tvvm") }
        }
        let leasedAgain = ((try? FileManager.default.contentsOfDirectory(atPath: Self.leases)) ?? []).filter { $0.hasPrefix(Self.subnetPrefix) }
        restore.waitUntilExit()
        #expect(again == ports && leasedAgain == leased, "the restore's tap \(again) and lease \(leasedAgain), the VM's \(ports) \(leased)")
        #expect(restore.terminationStatus == 124)
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

    @Test("containers without a network leave the bridge's table alone: tandem-runtime start and delete, tandem ctr run exec no nft (deleting an absent table is an nft run, ~20 ms of every delete)",
          .enabled(if: OCI.available && Strace.path != nil, "needs a built tandem-runtime, busybox-static and strace"))
    func noNetworkRunsNoNft() throws {
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["true"]
            config["process"] = process
        }
        let id = OCI.unique("nonet")
        // create leaves the container's monitor running, which strace -f would wait for: untraced.
        try #require(try runtime("create", "--bundle", bundle.path, id).status == 0)
        let commands = [[runtime.binary, "--root", runtime.root, "start", id],
                        [runtime.binary, "--root", runtime.root, "delete", "--force", id],
                        [Tandem.path, "ctr", "run", "--state-root", state, "--", "/bin/true"]]
        for command in commands {
            let trace = NSTemporaryDirectory() + "tandem-nonet-" + id + ".trace"
            defer { unlink(trace) }
            let result = try OCI.exec([Strace.path!, "-f", "-qq", "-e", "trace=execve", "-o", trace] + command)
            #expect(result.status == 0, "\(command): \(result.stderr)")
            let execs = (try String(contentsOfFile: trace, encoding: .utf8)).split(separator: "\n").filter { $0.contains("execve(") }
            #expect(!execs.contains { $0.contains("nft\"") }, "\(command.dropFirst(1).prefix(4)) ran nft: \(execs)")
        }
        OCI.expectNothingLeft(id, root: runtime.root)
        Self.expectNothingLeft()
    }

    @Test("refused by name, nothing made: an unknown --net, and an interface called tandembr0 that is not a bridge")
    func refusals() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let unknown = try Containers.run(["--net", "host2", "--", "/bin/true"], state: state).result
        #expect(unknown.status == 125 && unknown.stderr.contains("--net host2: must be none, loopback, bridge or host"), "\(unknown.stderr)")
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

/// `--net bridge`'s NAT and `-p`, and `--net host`, on this host's real nftables, bridge and
/// network namespaces (one at a time: they share the bridge and its table).
/// Nested in ContainerNetworkTests, so that its `.serialized` keeps them apart from its tests too.
extension ContainerNetworkTests {
    @Suite("tandem ctr run -p and NAT: published ports, outbound NAT, --net host",
           .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft"), "needs nft (Debian's nftables: make deps)"))
    struct Ports {
        typealias Net = ContainerNetworkTests

        /// busybox httpd serving `text` as /index.html on port 80, in the foreground.
        static func server(_ text: String) -> [String] {
            ["/bin/sh", "-c", "mkdir -p /tmp/www && echo \(text) > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"]
        }

        @Test("-p 18080:80: the container's server answers on 127.0.0.1, on the bridge's host address and from another namespace (DNAT); the port cannot be published twice; stopped: no element, table, bridge, veth or lease")
        func publishedPort() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let outside = try Net.Outside()
            defer { Net.Outside.remove() }
            let started = try Containers.ctr(["run", "-d", "--net", "bridge", "-p", "18080:80"] + ["--"] + Self.server("published-page"), state: state)
            try #require(started.status == 0, "\(started.stderr)")
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? Containers.ctr(["rm", "-f", id], state: state) }
            #expect(Net.fetch("127.0.0.1", port: 18080) == "published-page", "not reached through 127.0.0.1")
            #expect(Net.fetch("172.29.0.1", port: 18080) == "published-page", "not reached through the bridge's host address")
            // (busybox's static wget crashes in its resolver here: a request through nc.)
            let remote = try outside.run(["/bin/sh", "-c", "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 \(Net.Outside.hostAddress) 18080"])
            #expect(remote.stdout.hasSuffix("\r\n\r\npublished-page\n"), "not reached from another namespace: \(remote.stdout) \(remote.stderr)")
            #expect(Net.publishedElements().contains("tcp . 18080 : 172.29.0."), "\(Net.publishedElements())")
            let inspect = try Containers.ctr(["inspect", id], state: state)
            #expect(inspect.stdout.contains("\"18080:80/tcp\"") && inspect.stdout.contains("\"address\": \"172.29.0."), "\(inspect.stdout)")

            let twice = try Containers.run(["--net", "bridge", "-p", "18080:81", "--", "/bin/true"], state: state).result
            #expect(twice.status == 125 && twice.stderr.contains("host port 18080/tcp is already published by container \(id.prefix(12))"), "\(twice.stderr)")
            let removed = try Containers.ctr(["rm", "-f", id], state: state)
            #expect(removed.status == 0, "\(removed.stderr)")
            Net.expectNothingLeft()
        }

        @Test("an address leased again while its last container's network namespace is still being torn down (held open here) answers at once: the new eth0 announces its MAC")
        func reusedAddressAnswers() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let holderID = try Net.holdBridge(state: state)
            defer { _ = try? Containers.ctr(["rm", "-f", holderID], state: state) }
            func server(_ text: String) throws -> (id: String, address: String, pid: String) {
                let started = try Containers.ctr(["run", "-d", "--net", "bridge", "--", "/bin/sh", "-c",
                                                  "mkdir -p /tmp/www && echo \(text) > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"], state: state)
                try #require(started.status == 0, "\(started.stderr)")
                let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                let inspect = try Containers.ctr(["inspect", id], state: state).stdout
                func field(_ name: String, quoted: Bool) -> String {
                    let marker = "\"\(name)\": " + (quoted ? "\"" : "")
                    return inspect.components(separatedBy: marker).dropFirst().first?.prefix { quoted ? $0 != "\"" : $0.isNumber }.description ?? ""
                }
                return (id, field("address", quoted: true), field("pid", quoted: false))
            }
            let first = try server("first")
            defer { _ = try? Containers.ctr(["rm", "-f", first.id], state: state) }
            #expect(Net.fetch(first.address, port: 80, within: 5) == "first")  // the host now holds its MAC
            // The kernel tears a network namespace down in the background; a process kept in it
            // here holds that window open: the old eth0, same address, old MAC, still on the bridge.
            let lingering = Process()
            lingering.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
            lingering.arguments = ["-t", first.pid, "-n", "/bin/sleep", "30"]
            try lingering.run()
            defer { kill(lingering.processIdentifier, SIGKILL); lingering.waitUntilExit() }
            Thread.sleep(forTimeInterval: 0.2)
            _ = try Containers.ctr(["rm", "-f", first.id], state: state)
            // Its veth outlives it while the namespace lives, but off the bridge: it answers no ARP there.
            let oldEnd = "/sys/class/net/tv\(first.id.prefix(12))"
            #expect(FileManager.default.fileExists(atPath: oldEnd), "the held namespace's veth is gone: the test holds nothing")
            #expect(!FileManager.default.fileExists(atPath: oldEnd + "/master"), "the ended container's veth is still on the bridge")
            let second = try server("second")
            defer { _ = try? Containers.ctr(["rm", "-f", second.id], state: state) }
            #expect(second.address == first.address, "the address was not leased again: \(first.address) then \(second.address)")
            #expect(Net.fetch(second.address, port: 80, within: 3) == "second", "\(second.address) still led to the old MAC after 3 s")
        }

        @Test("-p 18085:5353/udp: a UDP client sending before the container exists reaches it once it does (its early flow's NAT decision is dropped)")
        func udpFlowBeforePublishing() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            // One source port throughout, a datagram every 50 ms for 5 s.
            let sender = Process()
            sender.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            sender.arguments = ["-c", "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor _ in range(100):\n    s.sendto(b'ping\\n', ('127.0.0.1', 18085)); time.sleep(0.05)"]
            try sender.run()
            defer { kill(sender.processIdentifier, SIGKILL); sender.waitUntilExit() }
            Thread.sleep(forTimeInterval: 0.5)  // the flow exists (no NAT: nothing is published yet)
            let result = try Containers.run(["--net", "bridge", "-p", "18085:5353/udp", "--", "/bin/netio", "udp-recv", "5353", "3"], state: state).result
            #expect(result.stdout.hasPrefix("ping"), "the container got nothing of the early flow: \(result.stdout) \(result.stderr)")
            Net.expectNothingLeft()
        }

        @Test("outbound NAT: a container reaches a namespace that has no route back to the bridge (only the NAT makes that work)")
        func outboundNAT() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let outside = try Net.Outside()
            defer { Net.Outside.remove() }
            let fifo = NSTemporaryDirectory() + "tandem-test-nc-\(getpid())"
            defer { unlink(fifo) }
            try #require(mkfifo(fifo, 0o600) == 0, "mkfifo \(fifo)")
            let listener = Background { try? outside.run(["/bin/sh", "-c", "exec /usr/bin/timeout -s KILL 20 /bin/busybox nc -l -p 7073 <> \(fifo)"]) }
            let result = try Containers.run(["--net", "bridge", "--", "/bin/sh", "-c", Net.sendScript("through-nat", to: Net.Outside.address, port: 7073)], state: state).result
            #expect(result.status == 0, "\(result.stderr)")
            #expect(listener.wait()?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "through-nat")
            Net.expectNothingLeft()
        }

        @Test("tandem SIGKILLed while it publishes a port (another container keeps the bridge and its table): the next run sweeps the element, and the port can be published again")
        func killedPublisherSwept() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let holderID = try Net.holdBridge(state: state)
            defer { _ = try? Containers.ctr(["rm", "-f", holderID], state: state) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Tandem.path)
            process.arguments = ["ctr", "run", "--state-root", state, "--net", "bridge", "-p", "18081:80", "--", "/bin/sleep", "60"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            var published = false
            for _ in 0..<200 where !published {
                Thread.sleep(forTimeInterval: 0.05)
                published = Net.publishedElements().contains("18081") && !Net.interfaces("tv").isEmpty
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(published, "the port was never published")
            let again = try Containers.run(["--net", "bridge", "-p", "18081:80", "--", "/bin/true"], state: state).result
            #expect(again.status == 0, "\(again.stderr)")
            #expect(!Net.publishedElements().contains("18081"), "the element outlived both runs: \(Net.publishedElements())")
            _ = try Containers.ctr(["rm", "-f", holderID], state: state)
            Net.expectNothingLeft()
        }

        @Test("refused by name before anything is made: a host port a host program listens on, -p without --net bridge, bad ports, --net host with --userns")
        func refusals() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(sock) }
            var address = sockaddr_in(sin_family: sa_family_t(AF_INET), sin_port: UInt16(18082).bigEndian, sin_addr: in_addr(s_addr: 0), sin_zero: (0, 0, 0, 0, 0, 0, 0, 0))
            let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            try #require(bound == 0 && listen(sock, 1) == 0, "cannot listen on 18082")
            let cases: [([String], String)] = [
                (["--net", "bridge", "-p", "18082:80"], "--publish 18082:80/tcp: host port 18082/tcp is in use by a program on this host"),
                (["-p", "18083:80"], "--publish 18083:80: needs --net bridge"),
                (["--net", "host", "-p", "18083:80"], "with --net host the container's ports are the host's already"),
                (["--net", "bridge", "-p", "18083:0"], "the container port '0' must be a number from 1 to 65535"),
                (["--net", "bridge", "-p", "70000:80"], "the host port '70000' must be a number from 1 to 65535"),
                (["--net", "bridge", "-p", "18083:80/sctp"], "the protocol must be tcp or udp"),
                (["--net", "bridge", "-p", "127.0.0.1:18083:80"], "a host address is not supported"),
                (["--net", "bridge", "-p", "18083:80", "-p", "18083:81"], "host port 18083/tcp is given twice"),
                (["--net", "host", "--userns"], "--net host: not with a user namespace (--userns)"),
            ]
            for (options, message) in cases {
                let refused = try Containers.run(options + ["--", "/bin/true"], state: state).result
                #expect(refused.status == 125 && refused.stderr.contains(message), "\(options): \(refused.stderr)")
            }
            Net.expectNothingLeft()
        }

        @Test("--net host: the container sees the host's interfaces, and a server it starts on 127.0.0.1 is the host's")
        func hostNetwork() throws {
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let listed = try Containers.run(["--net", "host", "--", "/bin/ls", "/sys/class/net"], state: state).result
            #expect(listed.status == 0, "\(listed.stderr)")
            let host = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).filter { !$0.hasPrefix("tv") }.sorted()
            #expect(listed.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("tv") }.sorted() == host, "\(listed.stdout)")
            let started = try Containers.ctr(["run", "-d", "--net", "host", "--", "/bin/sh", "-c",
                                              "mkdir -p /tmp/www && echo host-net > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:18084 -h /tmp/www"], state: state)
            try #require(started.status == 0, "\(started.stderr)")
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? Containers.ctr(["rm", "-f", id], state: state) }
            #expect(Net.fetch("127.0.0.1", port: 18084) == "host-net")
            #expect(Net.interfaces(Net.bridge).isEmpty, "--net host made a bridge")
        }
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

/// `tandem bench --workloads http`: nested in ContainerNetworkTests (serialized with its tests:
/// the bench holds the bridge while it runs).
extension ContainerNetworkTests {
    @Suite("tandem bench --workloads http: cold start and load per backend",
           .enabled(if: Tandem.guestsBuilt, "needs make guests and make image"),
           .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk"), "needs wrk (Debian's wrk: make deps)"),
           .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/nft"), "needs nft (Debian's nftables: make deps)"))
    struct ServerBench {
        @Test("tandem image build --with-redis: redis-server and its libraries run in a container from that image (its /bin/redis workload), reached through a published port",
              .enabled(if: FileManager.default.fileExists(atPath: "/usr/bin/redis-check-rdb"), "needs redis-tools (make deps)"))
        func redisImage() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-redis-image-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let built = try Tandem.run(["image", "build", "--with-redis", "--out", out])
            try #require(built.status == 0, "\(built.stderr)")
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let started = try Containers.ctr(["run", "-d", "--image", out + "/rootfs", "--net", "bridge", "-p", "18286:6379", "--", "/bin/redis", "6379"],
                                             state: state)
            try #require(started.status == 0, "\(started.stderr)")
            let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            defer { _ = try? Containers.ctr(["rm", "-f", id], state: state) }
            let answer = ContainerNetworkTests.redisPing("127.0.0.1", port: 18286)
            #expect(answer.hasPrefix("+PONG"), "redis did not answer: \(answer)")
            let removed = try Containers.ctr(["rm", "-f", id], state: state)
            #expect(removed.status == 0)
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("Ctrl-C during the server benchmark: status 130, what was measured kept (complete: false), the trial's container, the bridge holder, the bridge and its rules gone")
        func interrupted() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-http-int-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let result = try Tandem.run(["bench", "--backends", "container", "--workloads", "http", "--trials", "50", "--warmup", "0",
                                         "--server-seconds", "1", "--no-manager-kill", "--out", out], interruptAfter: 5)
            #expect(result.status == 130, "\(result.stderr.suffix(1000))")
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))
            let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(results["complete"] as? Bool == false)
            let servers = results["servers"] as? [[String: Any]] ?? []
            #expect(!servers.isEmpty && servers.count < 150, "\(servers.count) trials kept")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("the process, three container networks and crun and runc on the bridge each answer, are loaded by wrk without errors and stop cleanly; the report has the table; the bridge, its rules and the leases are gone")
        func http() throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-http-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let result = try Tandem.run(["bench", "--backends", "process,container,crun,runc,tiny-microvm", "--workloads", "http", "--trials", "2", "--warmup", "0",
                                         "--server-seconds", "1", "--no-manager-kill", "--out", out])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))")
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))
            let results = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let servers = try #require(results["servers"] as? [[String: Any]])
            for backend in ["process", "container-bridge", "container-published", "container-hostnet", "crun-bridge", "runc-bridge"] {
                let trials = servers.filter { $0["backend"] as? String == backend }
                #expect(trials.count == 2, "\(backend): \(trials)")
                for trial in trials {
                    #expect((trial["coldStartMs"] as? Double ?? 0) > 0, "\(backend): no cold start: \(trial)")
                    #expect((trial["requestsPerSecond"] as? Double ?? 0) > 100, "\(backend): \(trial)")
                    #expect(trial["errors"] as? Int == 0, "\(backend): \(trial)")
                    // The server saw at least what wrk counted (and the cold start's request).
                    #expect((trial["served"] as? Int ?? 0) > 100, "\(backend): the server's own count is missing: \(trial)")
                    // Stopped with SIGTERM: the bare server exits 0; a foreground `tandem ctr run` says 128+15, as documented.
                    // (crun and runc pass it on and exit with the server's 0.)
                    #expect(trial["status"] as? Int == (backend.hasPrefix("container") ? 143 : 0), "\(backend): \(trial)")
                }
            }
            let notes = results["notes"] as? [String] ?? []
            #expect(notes.contains { $0.contains("http × tiny-microvm: not run") }, "\(notes)")
            let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
            #expect(markdown.contains("## Servers: http under load") && markdown.contains("| `container-published` | native | 2 |"), "\(markdown.suffix(3000))")
            ContainerNetworkTests.expectNothingLeft()
        }

        @Test("two server benches at once: each gets its own network namespace for runc (their veths are named apart) and measures it; nothing left",
              .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc"), "needs runc"))
        func twoBenchesAtOnce() throws {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-two-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: base) }
            let arguments = ["bench", "--backends", "runc", "--workloads", "http", "--trials", "1", "--warmup", "0", "--server-seconds", "2", "--no-manager-kill"]
            let other = Background { try? Tandem.run(arguments + ["--out", base + "/a"]) }
            let this = try Tandem.run(arguments + ["--out", base + "/b"])
            let first = other.wait()
            for (result, out) in [(first, base + "/a"), (Optional(this), base + "/b")] {
                #expect(result?.status == 0, "\(result?.stderr.suffix(1500) ?? "no result")")
                let results = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any]
                let runc = (results?["servers"] as? [[String: Any]] ?? []).filter { $0["backend"] as? String == "runc-bridge" }
                #expect(runc.count == 1 && (runc.first?["requestsPerSecond"] as? Double ?? 0) > 100, "\(out): \(results?["notes"] ?? "no results")")
            }
            ContainerNetworkTests.expectNothingLeft()
        }

        /// `tandem bench --backends process,BACKEND --workloads http`, one short trial: the VM's
        /// column `column` answered, was loaded without errors, stopped with SIGTERM (143), and its
        /// row says how the guest ran (KVM, or TCG: emulated).
        static func vmServerColumn(backend: String, column: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-bench-vmhttp-\(UUID().uuidString.prefix(8))").path
            defer { try? FileManager.default.removeItem(atPath: out) }
            let result = try Tandem.run(["bench", "--backends", "process,\(backend)", "--workloads", "http", "--trials", "1", "--warmup", "0",
                                         "--server-seconds", "1", "--no-manager-kill", "--out", out])
            #expect(result.status == 0, "\(result.stderr.suffix(2000))", sourceLocation: sourceLocation)
            let results = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any],
                                       sourceLocation: sourceLocation)
            let trials = (results["servers"] as? [[String: Any]] ?? []).filter { $0["backend"] as? String == column }
            #expect(trials.count == 1, "\(results["servers"] ?? "no servers") \(results["notes"] ?? "")", sourceLocation: sourceLocation)
            for trial in trials {
                #expect((trial["coldStartMs"] as? Double ?? 0) > 0, "no cold start: \(trial)", sourceLocation: sourceLocation)
                #expect((trial["requestsPerSecond"] as? Double ?? 0) > 100, "\(trial)", sourceLocation: sourceLocation)
                #expect(trial["errors"] as? Int == 0, "\(trial)", sourceLocation: sourceLocation)
                #expect(trial["status"] as? Int == 143, "the launcher stopped with SIGTERM says 128+15: \(trial)", sourceLocation: sourceLocation)
            }
            let hardware = (results["host"] as? [String: Any])?["virtualisation"] as? String == "hardware"
            let markdown = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
            #expect(markdown.contains(hardware ? "| `\(column)` | KVM |" : "| `\(column)` | TCG (emulated) |"), "\(markdown.suffix(2000))", sourceLocation: sourceLocation)
            #expect(markdown.contains("| `process` | native |"), "\(markdown.suffix(2000))", sourceLocation: sourceLocation)
        }

        @Test("a libvirt guest on the bridge serves http: answered, loaded by wrk without errors, stopped (143); its row is marked emulated where there is no hardware virtualisation; no domain, lease or bridge left",
              .enabled(if: LibvirtLab.ready, "needs a running libvirt daemon (scripts/libvirtd.sh up), the cloud kernel and make image"))
        func libvirtServer() throws {
            try Self.vmServerColumn(backend: "libvirt", column: "libvirt-bridge")
            #expect(LibvirtLab.tandemDomains().isEmpty, "a domain is left")
            ContainerNetworkTests.expectNothingLeft()
        }
    }
}
