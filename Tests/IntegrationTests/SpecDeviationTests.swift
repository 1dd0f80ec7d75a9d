import Foundation
import Testing

/// Where tandem-runtime used to deviate from the runtime spec (or from what runc and crun both
/// do), each case beside runc where runc does the same.
@Suite("tandem-runtime: the runtime spec where it used to deviate", .enabled(if: OCI.available, "needs root, busybox-static and a built tandem-runtime"))
struct SpecDeviationTests {
    static func bundle(args: [String], edit: (inout [String: Any]) -> Void = { _ in }) throws -> OCI.Bundle {
        try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = args
            config["process"] = process
            edit(&config)
        }
    }

    static func editLinux(_ config: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
        var linux = config["linux"] as? [String: Any] ?? [:]
        edit(&linux)
        config["linux"] = linux
    }

    /// Runs the bundle with tandem-runtime (and runc where installed): their results by name.
    static func run(_ bundle: OCI.Bundle, withRunc: Bool = true) throws -> [String: OCI.Result] {
        var results: [String: OCI.Result] = [:]
        let runtimes = withRunc && OCI.runc != nil ? OCI.Runtime.both() : [OCI.Runtime.tandem()]
        for runtime in runtimes {
            defer { runtime.cleanUp() }
            let id = OCI.unique("spec")
            results[runtime.name] = try runtime("run", "--bundle", bundle.path, id)
            if runtime.name == "tandem-runtime" { OCI.expectNothingLeft(id, root: runtime.root) }
        }
        return results
    }

    @Test("memory.kernel and kernelTCP: ignored with a warning that names them (runc: the same)")
    func kernelMemory() throws {
        let bundle = try Self.bundle(args: ["true"]) { config in
            Self.editLinux(&config) { $0["resources"] = ["memory": ["kernel": 100_000_000, "kernelTCP": 50_000_000]] }
        }
        let results = try Self.run(bundle)
        let tandem = try #require(results["tandem-runtime"])
        #expect(tandem.status == 0, "\(tandem.stderr)")
        #expect(tandem.stderr.contains("linux.resources.memory.kernel:") && tandem.stderr.contains("linux.resources.memory.kernelTCP:"), "\(tandem.stderr)")
        if let runc = results["runc"] { #expect(runc.status == 0) }
    }

    @Test("hostname with a uts namespace joined by path: set in the joined namespace (runc: the same)")
    func hostnameInJoinedNamespace() throws {
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        holder.arguments = ["--uts", "/bin/sleep", "30"]
        try holder.run()
        defer { kill(holder.processIdentifier, SIGKILL); holder.waitUntilExit() }
        usleep(200_000)
        let bundle = try Self.bundle(args: ["hostname"]) { config in
            config["hostname"] = "joined"
            Self.editLinux(&config) { linux in
                linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]).map { namespace in
                    namespace["type"] as? String == "uts" ? ["type": "uts", "path": "/proc/\(holder.processIdentifier)/ns/uts"] : namespace
                }
            }
        }
        for (name, result) in try Self.run(bundle) {
            #expect(result.status == 0 && result.stdout == "joined\n", "\(name): \(result.stdout) \(result.stderr)")
        }
        var name = utsname()
        uname(&name)
        let host = withUnsafeBytes(of: name.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        #expect(host != "joined", "the host's own name is untouched")
    }

    @Test("rootfsPropagation shared, slave, unbindable: the root has it, and the host's mount table does not change", arguments: ["shared", "slave", "unbindable"])
    func rootPropagation(_ propagation: String) throws {
        let bundle = try Self.bundle(args: ["awk", "$5 == \"/\"", "/proc/self/mountinfo"]) { config in
            Self.editLinux(&config) { $0["rootfsPropagation"] = propagation }
        }
        let before = Hostile.mountTable()
        let tandem = try #require(try Self.run(bundle, withRunc: false)["tandem-runtime"])
        #expect(tandem.status == 0 && !tandem.stdout.isEmpty, "\(tandem.stderr)")
        switch propagation {
        case "shared": #expect(tandem.stdout.contains(" shared:"), "\(tandem.stdout)")
        case "unbindable": #expect(tandem.stdout.contains(" unbindable"), "\(tandem.stdout)")
        default: #expect(!tandem.stdout.contains(" shared:"), "a slave root is nobody's peer: \(tandem.stdout)")
        }
        #expect(Hostile.mountTable() == before)
    }

    @Test("a failing poststart or poststop hook: the others of its kind still run, a warning names it, the container runs and is deleted")
    func failingHooksWarn() throws {
        let marker = NSTemporaryDirectory() + OCI.unique("hooks")
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let bundle = try Self.bundle(args: ["true"]) { config in
            func append(_ word: String) -> [String: Any] { ["path": "/bin/sh", "args": ["sh", "-c", "echo \(word) >> \(marker)"]] }
            config["hooks"] = ["poststart": [["path": "/bin/false"], append("poststart")],
                               "poststop": [["path": "/bin/false"], append("poststop")]]
        }
        let tandem = try #require(try Self.run(bundle, withRunc: false)["tandem-runtime"])
        #expect(tandem.status == 0, "\(tandem.stderr)")
        #expect((try? String(contentsOfFile: marker, encoding: .utf8)) == "poststart\npoststop\n")
        #expect(tandem.stderr.contains("hooks.poststart[0] /bin/false") && tandem.stderr.contains("hooks.poststop[0] /bin/false"), "\(tandem.stderr)")
    }

    @Test("a cgroup namespace exists from create, rooted at the container's cgroup")
    func cgroupNamespaceAtCreate() throws {
        let bundle = try Self.bundle(args: ["sleep", "30"]) { config in
            Self.editLinux(&config) { linux in
                var namespaces = linux["namespaces"] as! [[String: Any]]
                if !namespaces.contains(where: { $0["type"] as? String == "cgroup" }) { namespaces.append(["type": "cgroup"]) }
                linux["namespaces"] = namespaces
            }
        }
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("cgns")
        let created = try runtime("create", "--bundle", bundle.path, id)
        #expect(created.status == 0, "\(created.stderr)")
        let pid = try #require(try runtime.state(id)["pid"] as? Int)
        let theirs = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/cgroup")
        let ours = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/ns/cgroup")
        #expect(theirs != ours, "created, not yet started: its own cgroup namespace already")
        #expect(try runtime("delete", "--force", id).status == 0)
        OCI.expectNothingLeft(id, root: runtime.root)
    }

    @Test("network without net_cls/net_prio on the host: refused naming the field; leafWeight without the file: a warning")
    func networkAndLeafWeight() throws {
        let hasNetCls = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/net_cls/cgroup.procs")
        let network = try Self.bundle(args: ["true"]) { config in
            Self.editLinux(&config) { $0["resources"] = ["network": ["classID": 1_048_577]] }
        }
        let refused = try #require(try Self.run(network, withRunc: false)["tandem-runtime"])
        if hasNetCls {
            #expect(refused.status == 0, "\(refused.stderr)")
        } else {
            #expect(refused.status != 0 && refused.stderr.contains("linux.resources.network.classID") && refused.stderr.contains("net_cls"), "\(refused.stderr)")
        }
        let leaf = try Self.bundle(args: ["true"]) { config in
            Self.editLinux(&config) { $0["resources"] = ["blockIO": ["leafWeight": 300]] }
        }
        let warned = try #require(try Self.run(leaf, withRunc: false)["tandem-runtime"])
        #expect(warned.status == 0, "\(warned.stderr)")
        let hasLeafWeight = ((try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup/blkio")) ?? []).contains("blkio.leaf_weight")
        #expect(hasLeafWeight || warned.stderr.contains("linux.resources.blockIO.leafWeight: ignored"), "\(warned.stderr)")
    }

    /// The host's mounts with their propagation (mount point and optional fields: shared:N,
    /// master:N), which a runtime that shares the host's namespace must not change either.
    static func mountsAndPropagation(_ mountinfo: String? = nil) -> [String] {
        (mountinfo ?? (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n").map { line in
            let fields = line.split(separator: " ")
            let optional = fields.dropFirst(6).prefix { $0 != "-" }
            return ([fields[4]] + optional).joined(separator: " ")
        }.sorted()
    }

    /// A config with no mount namespace (only those listed in `keep`), and nothing that needs one.
    static func withoutMountNamespace(_ args: [String], keep: Set<String>) throws -> OCI.Bundle {
        try Self.bundle(args: args) { config in
            config["mounts"] = [[String: Any]]()
            var root = config["root"] as! [String: Any]
            root["readonly"] = false
            config["root"] = root
            if !keep.contains("uts") { config.removeValue(forKey: "hostname") }
            Self.editLinux(&config) { linux in
                linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]).filter { keep.contains($0["type"] as! String) }
                linux.removeValue(forKey: "maskedPaths")
                linux.removeValue(forKey: "readonlyPaths")
            }
        }
    }

    @Test("no mount namespace listed: the runtime's is inherited, the program is chroot'ed into its root (exec too), and that namespace's mounts and their propagation do not change",
          arguments: [["pid", "network", "ipc", "uts"], []])
    func withoutMountNamespace(_ keep: [String]) throws {
        let bundle = try Self.withoutMountNamespace(["ls", "/"], keep: Set(keep))
        // The runtime runs in a mount namespace of the test's own (unshare, propagation
        // unchanged), with a shared tmpfs in it: a runtime that made the mounts it inherits
        // private (this host's / is private already; most hosts' is shared) would change it.
        let base = NSTemporaryDirectory() + "tandem-nomnt-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: base + "/shared", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("nomnt")
        let script = "mount -t tmpfs tmpfs \"$1/shared\" && mount --make-shared \"$1/shared\" && cat /proc/self/mountinfo > \"$1/before\" && "
            + "\"$2\" --root \"$3\" run --bundle \"$4\" \"$5\"; status=$?; cat /proc/self/mountinfo > \"$1/after\"; exit $status"
        let result = try OCI.exec(["/usr/bin/unshare", "-m", "--propagation", "unchanged", "/bin/sh", "-c", script, "sh",
                                   base, runtime.binary, runtime.root, bundle.path, id])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").sorted() == ["bin", "dev", "etc", "proc", "root", "sys", "tmp"], "the root's own entries: \(result.stdout)")
        let before = Self.mountsAndPropagation(try String(contentsOfFile: base + "/before", encoding: .utf8))
        let after = Self.mountsAndPropagation(try String(contentsOfFile: base + "/after", encoding: .utf8))
        #expect(before.contains { $0.hasPrefix(base + "/shared shared:") }, "\(before)")
        #expect(after == before, "nothing mounted, no propagation changed: \(after)")
        OCI.expectNothingLeft(id, root: runtime.root)

        // exec into a running one sees the same root.
        try bundle.setArgs(["sleep", "30"])
        let id2 = OCI.unique("nomnt")
        try #require(try runtime("create", "--bundle", bundle.path, id2).status == 0)
        defer { _ = try? runtime("delete", "--force", id2); OCI.expectNothingLeft(id2, root: runtime.root) }
        try #require(try runtime("start", id2).status == 0)
        let exec = try runtime("exec", id2, "ls", "/")
        #expect(exec.status == 0 && exec.stdout.contains("bin\n") && !exec.stdout.contains("usr\n"), "exec sees the container's root: \(exec.stdout) \(exec.stderr)")
    }

    @Test("no mount namespace but mounts (or masked paths): refused naming the field, and the host's mount table does not change (runc 1.1.5 makes them on the host and leaves them)")
    func mountsWithoutMountNamespace() throws {
        let before = Self.mountsAndPropagation()
        let withMounts = try Self.bundle(args: ["true"]) { config in
            Self.editLinux(&config) { linux in
                linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]).filter { $0["type"] as? String != "mount" }
            }
        }
        let result = try #require(try Self.run(withMounts, withRunc: false)["tandem-runtime"])
        #expect(result.status != 0 && result.stderr.contains("config.json: mounts: needs a mount namespace"), "\(result.stderr)")
        let masked = try Self.withoutMountNamespace(["true"], keep: ["pid"])
        masked.config["linux"] = (masked.config["linux"] as! [String: Any]).merging(["maskedPaths": ["/proc/kcore"]]) { $1 }
        try masked.save()
        let refused = try #require(try Self.run(masked, withRunc: false)["tandem-runtime"])
        #expect(refused.status != 0 && refused.stderr.contains("linux.maskedPaths: needs a mount namespace"), "\(refused.stderr)")
        #expect(Self.mountsAndPropagation() == before, "nothing mounted on the host")
    }
}
