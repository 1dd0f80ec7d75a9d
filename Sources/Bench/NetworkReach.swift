import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The network half of seeds 002 and 004's "containers can interact with their host" (issue 17),
/// measured: the bench serves the canary's nonce from the host three ways (`HostServices`), and
/// the probe, run in each sandbox's network, says which of them answered it (docs/bench.md, "What
/// a sandbox reaches over the network"):
///
/// - a service bound to the host's loopback (127.0.0.1), as databases and admin ports often are;
/// - an abstract Unix socket, which belongs to a network namespace and not to the file system
///   (containerd-shim's, reachable from host-network containers, was CVE-2020-15257);
/// - a service bound to the host's address on Tandem's bridge, which everything on the bridge —
///   containers and VMs alike — reaches by design.
public enum NetworkReach {
    /// One sandbox in one network, the probe its workload.
    public struct Subject: Sendable {
        public var sandbox: String
        /// "process", "container" or "VM" (the claim counts by it).
        public var kind: String
        public var network: String
        public var execution: String
        var argv: [String]
    }

    /// The probe's arguments: the canary's file and key (its abstract socket has the key's name),
    /// the services' port, and the host's bridge address.
    public static func probeArguments(canary: HostCanary, services: HostServices) -> [String] {
        [canary.path, canary.keyDescription, String(services.port), services.bridgeAddress]
    }

    /// The subjects for the backends in `wanted` that can run here, and a note for each that cannot.
    /// `bridge`: the host's service on the bridge is up (the bridge exists); `libvirtUp`: the
    /// daemon's socket is there. Tandem's own microVM runs Linux here only with hardware
    /// virtualisation (else in the nested lab, whose bridge is L1's).
    public static func subjects(_ wanted: [String], environment: BenchEnvironment, arguments: [String], bridge: Bool,
                                libvirtUp: Bool) -> (subjects: [Subject], notes: [String]) {
        var subjects: [Subject] = []
        var notes: [String] = []
        guard let rootfs = environment.rootfs, Files.kind(rootfs + "/bin/probe") == .regular else {
            return ([], ["network reach: not measured — the guest image has no /bin/probe (make image)"])
        }
        let vmArguments = "tandem.args=" + arguments.joined(separator: ",")
        let emulated = environment.virtualisation != "hardware"
        if wanted.contains("process") {
            subjects.append(Subject(sandbox: "process", kind: "process", network: "the host's (no isolation: the control)",
                                    execution: "native (host kernel)", argv: [rootfs + "/bin/probe"] + arguments))
        }
        if wanted.contains("container") {
            let run = [environment.tandem, "ctr", "run"]
            for (flag, network) in [("loopback", "its own, loopback only (the default)"), ("bridge", "eth0 on tandembr0"),
                                    ("host", "the host's (--net host)")] where flag != "bridge" || bridge {
                subjects.append(Subject(sandbox: "tandem ctr --net \(flag)", kind: "container", network: network, execution: "native (host kernel)",
                                        argv: run + ["--net", flag, "--", "/bin/probe"] + arguments))
            }
        }
        if !bridge, wanted.contains(where: { ["container", "qemu-microvm", "libvirt", "linux-microvm"].contains($0) }) {
            notes.append("network reach: nothing on the bridge measured — the bridge tandembr0 could not be held (needs root and nft)")
        }
        if bridge, wanted.contains("qemu-microvm"), Files.which("qemu-system-x86_64") != nil, environment.kernel != nil {
            subjects.append(Subject(sandbox: "tandem vm run --backend qemu --net bridge", kind: "VM", network: "virtio-net on a tap on tandembr0",
                                    execution: emulated ? "TCG (QEMU emulates the guest)" : "hardware KVM",
                                    argv: [environment.tandemCLI, "vm", "run", "--backend", "qemu", "--net", "bridge", "--workload", "probe",
                                           "--cmdline", vmArguments, "--timeout", "300"]))
        }
        if bridge, wanted.contains("libvirt"), environment.kernel != nil {
            if libvirtUp {
                subjects.append(Subject(sandbox: "tandem vm run --backend libvirt --net bridge", kind: "VM", network: "virtio-net on tandembr0 (<interface type='bridge'>)",
                                        execution: emulated ? "TCG (QEMU emulates the guest)" : "hardware KVM",
                                        argv: [environment.tandemCLI, "vm", "run", "--backend", "libvirt", "--net", "bridge", "--workload", "probe",
                                               "--cmdline", vmArguments, "--timeout", "300"]))
            } else {
                notes.append("network reach × libvirt: not measured — no libvirt daemon (scripts/libvirtd.sh up)")
            }
        }
        if wanted.contains("linux-microvm") {
            if !emulated, bridge, environment.kernel != nil {
                subjects.append(Subject(sandbox: "tandem vm run --net bridge", kind: "VM", network: "virtio-net on a tap on tandembr0",
                                        execution: "hardware KVM",
                                        argv: [environment.tandem, "vm", "run", "--net", "bridge", "--workload", "probe", "--cmdline", "quiet " + vmArguments]))
            } else if emulated {
                notes.append("network reach × linux-microvm: not measured — without hardware virtualisation Tandem's microVM runs Linux only in the nested lab, whose bridge is L1's, not this host's")
            }
        }
        return (subjects, notes)
    }

    /// Runs `subject`'s probe under the stopwatch and keeps what it reached; `interrupted` when
    /// Ctrl-C or SIGTERM reached the bench meanwhile.
    public static func measure(_ subject: Subject, labTime: String, timeoutSeconds: Double) -> (result: NetworkReachResult, interrupted: Bool) {
        var result = NetworkReachResult(sandbox: subject.sandbox, kind: subject.kind, network: subject.network, execution: subject.execution,
                                        status: -1, facts: nil, note: "")
        do {
            let measurement = try Stopwatch.measure(subject.argv, labTime: labTime, timeoutSeconds: timeoutSeconds)
            if measurement.interruptedBy != nil { return (result, true) }
            result.status = measurement.status
            if let line = measurement.lines.first(where: { $0.hasPrefix("TANDEM-PROBE ") }) {
                let facts = Sample.probeFacts(line)
                result.facts = facts.filter { $0.key.hasPrefix("net_") }
                if result.facts?.isEmpty != false { result.note = "the probe printed no network facts (an image built before them: make image)" }
            } else {
                result.note = "no probe line; it printed last: " + measurement.tail.joined(separator: " | ")
            }
        } catch {
            if error.errno == EINTR { return (result, true) }
            result.note = "\(error)"
        }
        return (result, false)
    }
}

/// The three host services the probe tries (`NetworkReach`), each writing the nonce to whoever
/// connects and closing: TCP on 127.0.0.1:port and on the bridge address:port (the same port, an
/// ephemeral one the kernel chose), and the abstract Unix socket `@name`. A thread accepts until
/// `stop()`.
public final class HostServices: @unchecked Sendable {
    public let port: UInt16
    public let bridgeAddress: String
    /// Whether the bridge address could be bound (the bridge exists).
    public let onBridge: Bool
    private let sockets: [Int32]
    private let wake: (read: Int32, write: Int32)
    private var thread: HostThread?

    /// Binds all three (the bridge's only when `bridgeAddress` is the host's) and starts serving.
    public init(nonce: String, abstractName: String, bridgeAddress: String) throws(SystemError) {
        var made: [Int32] = []
        func fail(_ call: String, _ argument: String) -> SystemError {
            let error = SystemError(call, argument)
            made.forEach { close($0) }
            return error
        }
        let loopback = try Self.listenTCP("127.0.0.1", port: 0)
        made.append(loopback)
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafeMutablePointer(to: &bound, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(loopback, $0, &length) }
        }) == 0 else { throw fail("getsockname", "127.0.0.1") }
        port = UInt16(bigEndian: bound.sin_port)
        self.bridgeAddress = bridgeAddress
        if let bridge = try? Self.listenTCP(bridgeAddress, port: port) {
            made.append(bridge)
            onBridge = true
        } else {
            onBridge = false
        }
        let unix = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard unix >= 0 else { throw fail("socket", "AF_UNIX") }
        made.append(unix)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let name = Array(abstractName.utf8)
        guard !name.isEmpty, name.count < MemoryLayout.size(ofValue: address.sun_path) - 1 else { throw fail("bind", "@\(abstractName): name too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path[0] = 0  // the abstract namespace
            for (index, byte) in name.enumerated() { path[index + 1] = byte }
        }
        let addressLength = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + 1 + name.count)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(unix, $0, addressLength) } }) == 0,
              listen(unix, 16) == 0 else { throw fail("bind", "@\(abstractName)") }
        var pipe: [Int32] = [-1, -1]
        guard clinux_pipe_cloexec(&pipe) == 0 else { throw fail("pipe2", "HostServices") }
        sockets = made
        wake = (pipe[0], pipe[1])
        let payload = Array((nonce + "\n").utf8)
        let watched = made + [pipe[0]]
        do {
            thread = try HostThread(name: "host-services") {
                Self.serve(watched, payload: payload)
            }
        } catch {
            close(pipe[0])
            close(pipe[1])
            made.forEach { close($0) }
            throw error
        }
    }

    /// Stops serving and closes every socket.
    public func stop() {
        guard let thread else { return }
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
        thread.join()
        self.thread = nil
        sockets.forEach { close($0) }
        close(wake.read)
        close(wake.write)
    }

    deinit { stop() }

    /// Accepts on every socket until the last descriptor (the wake pipe) is readable; each
    /// connection gets the payload and is closed (non-blocking: a peer that never reads cannot
    /// hold the thread).
    private static func serve(_ descriptors: [Int32], payload: [UInt8]) {
        var polled = descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        while true {
            guard poll(&polled, nfds_t(polled.count), -1) >= 0 || errno == EINTR else { return }
            if polled.last!.revents != 0 { return }
            for entry in polled.dropLast() where entry.revents != 0 {
                let connection = clinux_unix_accept(entry.fd)  // accept4, for any listener
                guard connection >= 0 else { continue }
                _ = payload.withUnsafeBytes { send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(connection)
            }
        }
    }

    private static func listenTCP(_ host: String, port: UInt16) throws(SystemError) -> Int32 {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard sock >= 0 else { throw SystemError("socket", "AF_INET") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(sock)
            throw SystemError("inet_pton", host, errno: EINVAL)
        }
        guard withUnsafePointer(to: &address, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }) == 0, listen(sock, 16) == 0 else {
            let error = SystemError("bind", "\(host):\(port)")
            close(sock)
            throw error
        }
        return sock
    }
}
