import Bench

/// The "What a sandbox reaches over the network" table (`NetworkReach`), one definition for the
/// Markdown and HTML pages.
extension ReportModel {
    static let networkReachIntro = "The bench served a random nonce on the host three ways — a TCP service bound to 127.0.0.1 (as databases and admin ports often are), an abstract Unix socket (which belongs to a network namespace, not to the file system: containerd-shim's was CVE-2020-15257), and a TCP service bound to the host's address on Tandem's bridge — and ran the probe once in each network. yes: the probe read the nonce; no: refused, unreachable, or nothing read; no route: the sandbox reaches the bridge address only through a gateway, and it was not tried (nothing is sent off this machine)."

    static let networkReachHeader = ["sandbox", "network", "runs guest code"] + NetworkReachResult.services.map(\.name) + ["note"]

    /// One row per probe run: what it reached of each host service.
    var networkReachRows: [[String]] {
        let canary = results.host.canary ?? ""
        return (results.networkReach ?? []).map { run in
            let reached = NetworkReachResult.services.map { service -> String in
                guard let value = run.facts?[service.fact] else { return "—" }
                return value == canary ? "yes" : value == "unrouted" ? "no route" : "no"
            }
            let note = run.facts == nil ? "status \(run.status): \(run.note)" : run.note
            return [run.sandbox, run.network, run.execution] + reached + [note]
        }
    }

    /// The host-only services (its loopback and abstract socket: offered to no network) `run`
    /// reached; the bridge address's service, which the host offers to everything on the bridge,
    /// is not among them.
    func hostOnlyReached(_ run: NetworkReachResult) -> [String] {
        zip(NetworkReachResult.services, run.reached(results.host.canary ?? ""))
            .filter { $0.0.fact != "net_bridge" && $0.1 == true }.map(\.0.name)
    }
}
