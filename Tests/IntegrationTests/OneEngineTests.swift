import Foundation
import Testing

/// `tandem ctr` and `tandem-runtime` are two front ends of one engine with one store: what one
/// makes, the other lists, stops and removes.
@Suite("One engine: tandem ctr and tandem-runtime share the store", .enabled(if: Containers.available && OCI.available, "needs root, busybox and the image rootfs (make image)"))
struct OneEngineTests {
    func json(_ text: String) -> Any? { try? JSONSerialization.jsonObject(with: Data(text.utf8)) }

    @Test("a tandem ctr -d container is in tandem-runtime's list and state; a tandem-runtime container is in tandem ctr ps and goes with ctr rm")
    func sharedStore() throws {
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        func runtime(_ arguments: String...) throws -> OCI.Result { try OCI.exec([OCI.runtime, "--root", state] + arguments) }

        // tandem ctr → tandem-runtime
        let started = try Tandem.run(["ctr", "run", "-d", "--state-root", state, "--name", "front", "--", "/bin/sleep", "60"])
        #expect(started.status == 0, "\(started.stderr)")
        let id = started.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let list = try runtime("list", "--format", "json")
        let listed = (json(list.stdout) as? [[String: Any]]) ?? []
        #expect(listed.contains { $0["id"] as? String == id && $0["status"] as? String == "running" }, "\(list.stdout) \(list.stderr)")
        let ociState = json(try runtime("state", id).stdout) as? [String: Any]
        #expect(ociState?["status"] as? String == "running")
        #expect(ociState?["bundle"] as? String == state + "/" + id, "the bundle is the container's directory, with its config.json")
        #expect(FileManager.default.fileExists(atPath: state + "/" + id + "/config.json"))
        // The runtime's exec runs the config.json's process (Docker's capabilities) in it.
        let exec = try runtime("exec", id, "/bin/sh", "-c", "grep CapEff /proc/self/status; hostname")
        #expect(exec.status == 0 && exec.stdout.contains("00000000a80425fb") && exec.stdout.contains(String(id.prefix(12))), "\(exec.stdout) \(exec.stderr)")

        // tandem-runtime → tandem ctr
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["/bin/sleep", "60"]
            config["process"] = process
        }
        let created = try runtime("create", "--bundle", bundle.path, "oci-made")
        #expect(created.status == 0, "\(created.stderr)")
        var ps = try Containers.ctr(["ps", "--json"], state: state)
        var rows = (json(ps.stdout) as? [[String: Any]]) ?? []
        #expect(rows.contains { $0["id"] as? String == "oci-made" && $0["status"] as? String == "created" }, "\(ps.stdout)")
        #expect(rows.contains { $0["name"] as? String == "front" && $0["status"] as? String == "running" }, "\(ps.stdout)")
        #expect(try runtime("start", "oci-made").status == 0)
        ps = try Containers.ctr(["ps", "--json"], state: state)
        rows = (json(ps.stdout) as? [[String: Any]]) ?? []
        #expect(rows.contains { $0["id"] as? String == "oci-made" && $0["status"] as? String == "running" }, "\(ps.stdout)")
        let pause = try Containers.ctr(["pause", "oci-made"], state: state)
        #expect(pause.status == 0, "\(pause.stderr)")
        #expect((json(try runtime("state", "oci-made").stdout) as? [String: Any])?["status"] as? String == "paused")
        #expect(try runtime("resume", "oci-made").status == 0)

        // Each front end removes the other's.
        let removed = try Containers.ctr(["rm", "-f", "oci-made"], state: state)
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(try runtime("state", "oci-made").status != 0, "gone for tandem-runtime too")
        #expect(try runtime("delete", "--force", id).status == 0)
        #expect(!(try Containers.ctr(["ps"], state: state).stdout.contains("front")))
        Containers.expectNoLeftovers(id, state: state)
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies + [""] {
            let path = "/sys/fs/cgroup/\(hierarchy)/tandem-runtime/oci-made"
            #expect(!FileManager.default.fileExists(atPath: path), "cgroup left: \(path)")
        }
    }
}
