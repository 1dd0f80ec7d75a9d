import Bench
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
    static func backends(_ wanted: [String], _ environment: BenchEnvironment) -> ([ServerBackend], [String]) {
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
