import Foundation
import Testing

/// Every container of both front ends gets a device cgroup with the default allow-list: root in
/// it may keep CAP_MKNOD (tandem ctr does, as Docker), but a node it makes for a host device
/// (/dev/kvm, /dev/net/tun, the host's console) does not open.
enum DeviceProbe {
    /// A shell script: make each node, try to open it, print "name:open" or "name:denied".
    static let script = """
    for d in kvm:10:232 tun:10:200 fuse:10:229 console:5:1 mem:1:1; do
      n=${d%%:*}; rest=${d#*:}; mknod /dev/probe-$n c ${rest%%:*} ${rest#*:} 2>/dev/null || { echo "$n:nomknod"; continue; }
      if (exec 3</dev/probe-$n) 2>/dev/null; then echo "$n:open"; else echo "$n:denied"; fi
    done
    for n in null zero full urandom; do if (exec 3</dev/$n) 2>/dev/null; then echo "$n:open"; else echo "$n:denied"; fi; done
    """

    static func outcomes(_ output: String) -> [String: String] {
        Dictionary(output.split(separator: "\n").compactMap { line -> (String, String)? in
            let parts = line.split(separator: ":")
            return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
        }, uniquingKeysWith: { $1 })
    }

    static func expectDefaultAllowList(_ outcomes: [String: String], _ frontEnd: String, sourceLocation: SourceLocation = #_sourceLocation) {
        for host in ["kvm", "tun", "fuse", "console", "mem"] {
            #expect(outcomes[host] == "denied", "\(frontEnd): a node for the host's \(host) must not open (got \(outcomes[host] ?? "nothing"))",
                    sourceLocation: sourceLocation)
        }
        for standard in ["null", "zero", "full", "urandom"] {
            #expect(outcomes[standard] == "open", "\(frontEnd): /dev/\(standard) opens", sourceLocation: sourceLocation)
        }
    }
}

@Suite("A device cgroup for every container", .enabled(if: Containers.available && OCI.available, "needs root, busybox, tandem-runtime and make image"))
struct DeviceCgroupTests {
    @Test("tandem ctr: CAP_MKNOD kept, yet host devices made with it do not open; nothing left")
    func ctr() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let (result, report) = try Containers.run(["--", "/bin/sh", "-c", DeviceProbe.script], state: state)
        #expect(result.status == 0, "\(result.stderr)")
        DeviceProbe.expectDefaultAllowList(DeviceProbe.outcomes(result.stdout), "tandem ctr")
        Containers.expectNoLeftovers(try #require(report["id"] as? String), state: state)
    }

    @Test("tandem-runtime: a config with CAP_MKNOD and no device rules still gets the default allow-list")
    func runtime() throws {
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            var capabilities = process["capabilities"] as? [String: Any] ?? [:]
            for set in ["bounding", "effective", "permitted"] {
                capabilities[set] = (capabilities[set] as? [String] ?? []) + ["CAP_MKNOD"]
            }
            process["capabilities"] = capabilities
            process["args"] = ["sh", "-c", DeviceProbe.script]
            config["process"] = process
            var linux = config["linux"] as! [String: Any]
            var resources = linux["resources"] as? [String: Any] ?? [:]
            resources.removeValue(forKey: "devices")
            linux["resources"] = resources
            config["linux"] = linux
        }
        try FileManager.default.createSymbolicLink(atPath: bundle.path + "/rootfs/bin/mknod", withDestinationPath: "busybox")
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("devices")
        let result = try runtime("run", "--bundle", bundle.path, id)
        #expect(result.status == 0, "\(result.stderr)")
        DeviceProbe.expectDefaultAllowList(DeviceProbe.outcomes(result.stdout), "tandem-runtime")
        OCI.expectNothingLeft(id, root: runtime.root)
    }
}
