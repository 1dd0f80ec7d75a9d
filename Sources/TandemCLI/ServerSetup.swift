import Bench
import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The backends `tandem bench --workloads http` runs the http workload in, and the bridge it
/// holds meanwhile.
enum ServerSetup {
    static let workloads = ["http"]
    /// The ports the host side uses (high, unlikely to be taken; a taken one fails its trials by name).
    static let processPort: UInt16 = 18_280, publishedPort: UInt16 = 18_281, hostNetworkPort: UInt16 = 18_282

    /// The server backends among `wanted`, and a note for each backend that has none yet.
    static func backends(_ wanted: [String], _ environment: BenchEnvironment, peers: PeerNetwork?) -> ([ServerBackend], [String]) {
        var backends: [ServerBackend] = []
        var notes: [String] = []
        guard let rootfs = environment.rootfs else { return ([], ["http: not run — no guest image (make image)"]) }
        for name in wanted {
            switch name {
            case "process":
                backends.append(ServerBackend(name: "process", description: "the http program on the host's network, no isolation (the baseline)",
                                              argv: [rootfs + "/bin/http", String(processPort)], target: .fixed("127.0.0.1", processPort)))
            case "container":
                guard getuid() == 0 else { notes.append("http × container: not run — the bridge needs root"); continue }
                let run = [environment.tandem, "ctr", "run"]
                backends.append(ServerBackend(name: "container-bridge", description: "tandem ctr run --net bridge: the client reaches the container's address on tandembr0",
                                              argv: run + ["--net", "bridge", "--", "/bin/http", "80"], target: .announced(80)))
                backends.append(ServerBackend(name: "container-published", description: "tandem ctr run --net bridge -p \(publishedPort):80: the client reaches 127.0.0.1:\(publishedPort) (nftables DNAT)",
                                              argv: run + ["--net", "bridge", "-p", "\(publishedPort):80", "--", "/bin/http", "80"],
                                              target: .fixed("127.0.0.1", publishedPort)))
                backends.append(ServerBackend(name: "container-hostnet", description: "tandem ctr run --net host: the host's network, the container's other namespaces",
                                              argv: run + ["--net", "host", "--", "/bin/http", String(hostNetworkPort)],
                                              target: .fixed("127.0.0.1", hostNetworkPort)))
            case "crun", "runc":
                guard let runtime = Files.which(name) else { notes.append("http × \(name): not run — \(name) is not installed"); continue }
                guard let peers else { notes.append("http × \(name): not run — no network namespace on the bridge for it"); continue }
                let bundle = environment.workDirectory + "/\(name)-http"
                mkdir(bundle, 0o755)
                let config = OCIConfig.minimal(rootfs: rootfs, args: ["/bin/http", "80"], hostname: name, networkPath: peers.path)
                guard (try? Files.write(bundle + "/config.json", Array(config.utf8))) != nil else {
                    notes.append("http × \(name): not run — cannot write its bundle")
                    continue
                }
                backends.append(ServerBackend(name: "\(name)-bridge", description: "\(name) run joining a network namespace prepared once like a tandem container's (veth on tandembr0, leased address), as podman prepares one before its runtime runs",
                                              argv: [runtime, "--root", environment.workDirectory + "/\(name)-state", "run", "--bundle", bundle, "tandem-bench-\(getpid())-http"],
                                              target: .announced(80)))
            default:
                notes.append("http × \(name): not run — this backend has no server path yet (issue 17)")
            }
        }
        return (backends, notes)
    }

    /// An idle container on the bridge for the benchmark's duration (its id), when containers on
    /// the bridge are measured.
    static func holdBridge(_ environment: BenchEnvironment, needed: Bool) -> String? {
        guard needed, let result = try? Subprocess.run(environment.tandem, ["ctr", "run", "-d", "--net", "bridge", "--", "/bin/sleep", "1000000"],
                                                       mergeStandardError: false), result.status == 0 else { return nil }
        let id = result.output.split(separator: "\n").first.map(String.init) ?? ""
        return id.isEmpty ? nil : id
    }

    static func release(_ holder: String?, _ environment: BenchEnvironment) {
        guard let holder else { return }
        Subprocess.runQuietly(environment.tandem, ["ctr", "rm", "-f", holder])
    }
}

/// A network namespace on Tandem's bridge for the peers (crun, runc), made once for the server
/// benchmark as podman's netavark prepares one before its runtime runs: a sleeper in a new
/// network namespace (`unshare --net`) holds it, and it gets a lease and `eth0` exactly as a
/// `tandem ctr run --net bridge` container does (`BridgeNetwork`, one engine). The peers' cold
/// start therefore excludes making the namespace and its veth, which Tandem's includes.
final class PeerNetwork {
    let pid: pid_t
    let id: String
    var path: String { "/proc/\(pid)/ns/net" }

    init?(workDirectory: String) {
        guard let unshare = Files.which("unshare"),
              let (pid, _) = try? Subprocess.spawnPiped(unshare, ["--net", "--", "/bin/sleep", "1000000"], mergeStandardError: true, defaultSignals: true)
        else { return nil }
        self.pid = pid
        id = "bench-peers-\(getpid())"
        let ours = Files.readLink("/proc/self/ns/net")
        for _ in 0..<200 where Files.readLink(path) == ours || Files.readLink(path) == nil { usleep(5000) }
        do {
            let lease = try BridgeNetwork.lease(for: id, stateDirectory: workDirectory)
            try BridgeNetwork.attach(lease, pid: pid)
        } catch {
            remove()
            return nil
        }
    }

    func remove() {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        BridgeNetwork.release(id: id)
    }
}
