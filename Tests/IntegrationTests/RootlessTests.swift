import Foundation
import Testing

/// tandem-runtime run by an unprivileged user, as rootless runc and podman run: a user the test
/// creates (and removes), its state under $XDG_RUNTIME_DIR, its own uid as root in the container
/// (or its /etc/subuid range through newuidmap), no cgroup unless one is delegated.
@Suite("tandem-runtime rootless, as a real unprivileged user", .serialized,
       .enabled(if: OCI.available && Rootless.toolsPresent, "needs root (to make the user), busybox-static, a built tandem-runtime, useradd, runuser and newuidmap (package uidmap)"))
struct RootlessTests {
    /// One unprivileged user, with a bundle and a runtime directory it owns; removed by `remove()`.
    final class User {
        let name: String
        let uid: Int, gid: Int
        let base: String
        var bundle: String { base + "/bundle" }
        var runtimeDirectory: String { base + "/run" }

        init() throws {
            name = "tandem-rl-" + UUID().uuidString.prefix(6).lowercased()
            let made = try OCI.exec(["/usr/sbin/useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
            guard made.status == 0 else { throw POSIXError(.EPERM) }
            guard let entry = getpwnam(name) else { throw POSIXError(.ENOENT) }
            uid = Int(entry.pointee.pw_uid)
            gid = Int(entry.pointee.pw_gid)
            base = NSTemporaryDirectory() + name
            try FileManager.default.createDirectory(atPath: base + "/run", withIntermediateDirectories: true)
            let rootfs = base + "/bundle/rootfs"
            for directory in ["bin", "proc", "sys", "dev", "tmp", "etc", "root"] {
                try FileManager.default.createDirectory(atPath: rootfs + "/" + directory, withIntermediateDirectories: true)
            }
            try OCI.install(OCI.busybox!, at: rootfs + "/bin/busybox")
            for applet in ["sh", "id", "cat", "sleep", "true", "ls"] {
                try FileManager.default.createSymbolicLink(atPath: rootfs + "/bin/" + applet, withDestinationPath: "busybox")
            }
            _ = try OCI.exec(["/bin/chown", "-R", "\(uid):\(gid)", base])
            chmod(base + "/run", 0o700)
        }

        /// Runs `command` as this user, with its XDG_RUNTIME_DIR (or none), in the bundle.
        func run(_ command: [String], runtimeDirectory set: Bool = true) throws -> OCI.Result {
            let environment = ["/usr/bin/env", "-i", "PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + base]
                + (set ? ["XDG_RUNTIME_DIR=" + runtimeDirectory] : [])
            return try OCI.exec(["/usr/sbin/runuser", "-u", name, "--", "/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", bundle]
                                + environment + command)
        }

        /// Its first subordinate uid and gid range (useradd gives one on Debian and Ubuntu).
        func subordinate(_ file: String) -> (start: Int, count: Int)? {
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: ":")
                if fields.count == 3, fields[0] == name, let start = Int(fields[1]), let count = Int(fields[2]) { return (start, count) }
            }
            return nil
        }

        func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
            let path = bundle + "/config.json"
            var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
            edit(&config)
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path))
        }

        func remove() {
            _ = try? OCI.exec(["/usr/sbin/userdel", name])
            try? FileManager.default.removeItem(atPath: base)
        }
    }

    static func setArgs(_ config: inout [String: Any], _ args: [String]) {
        var process = config["process"] as! [String: Any]
        process["args"] = args
        process["terminal"] = false
        config["process"] = process
    }

    /// No cgroup directory of `id` in any hierarchy.
    static func expectNoCgroup(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies + [""] {
            let path = "/sys/fs/cgroup/\(hierarchy)/tandem-runtime/\(id)"
            #expect(!FileManager.default.fileExists(atPath: path), "\(path)", sourceLocation: sourceLocation)
        }
    }

    @Test("spec --rootless, run: root in the container is the user's own uid; state under $XDG_RUNTIME_DIR; no cgroup; runc says the same")
    func ownID() throws {
        let user = try User()
        defer { user.remove() }
        let spec = try user.run([OCI.runtime, "spec", "--rootless"])
        try #require(spec.status == 0, "\(spec.stderr)")
        try user.editConfig { Self.setArgs(&$0, ["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map"]) }
        let id = OCI.unique("rl")
        let result = try user.run([OCI.runtime, "run", id])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines == ["0", "0 \(user.uid) 1", "0 \(user.gid) 1"], "\(result.stdout)")
        Self.expectNoCgroup(id)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: user.runtimeDirectory + "/tandem-runtime")) ?? ["?"]).isEmpty,
                "nothing left under $XDG_RUNTIME_DIR/tandem-runtime")
        if let runc = OCI.runc {
            let theirs = try user.run([runc, "run", id])
            #expect(theirs.status == 0 && theirs.stdout == result.stdout, "runc: \(theirs.stdout) \(theirs.stderr)")
        }
    }

    @Test("subordinate ranges through newuidmap: create, start, exec as another mapped uid, ps, list (OWNER is the user), pause refused without a cgroup, delete; nothing left")
    func subordinateRanges() throws {
        let user = try User()
        defer { user.remove() }
        let uids = try #require(user.subordinate("/etc/subuid"), "useradd gave \(user.name) no /etc/subuid range")
        let gids = try #require(user.subordinate("/etc/subgid"), "useradd gave \(user.name) no /etc/subgid range")
        try #require(try user.run([OCI.runtime, "spec", "--rootless"]).status == 0)
        try user.editConfig { config in
            Self.setArgs(&config, ["sleep", "30"])
            var linux = config["linux"] as! [String: Any]
            linux["uidMappings"] = [["containerID": 0, "hostID": user.uid, "size": 1], ["containerID": 1, "hostID": uids.start, "size": min(uids.count, 65536)]]
            linux["gidMappings"] = [["containerID": 0, "hostID": user.gid, "size": 1], ["containerID": 1, "hostID": gids.start, "size": min(gids.count, 65536)]]
            config["linux"] = linux
        }
        let id = OCI.unique("rl")
        defer { _ = try? user.run([OCI.runtime, "delete", "--force", id]) }
        let create = try user.run([OCI.runtime, "create", id])
        try #require(create.status == 0, "\(create.stderr)")
        #expect(try user.run([OCI.runtime, "start", id]).status == 0)
        let exec = try user.run([OCI.runtime, "exec", "-u", "1000:1000", id, "sh", "-c", "id -u; cat /proc/self/uid_map"])
        let lines = exec.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines == ["1000", "0 \(user.uid) 1", "1 \(uids.start) \(min(uids.count, 65536))"], "\(exec.stdout) \(exec.stderr)")
        let ps = try user.run([OCI.runtime, "ps", id])
        #expect(ps.status == 0 && ps.stdout.contains("sleep 30"), "ps without a cgroup lists the container's processes: \(ps.stdout) \(ps.stderr)")
        let list = try user.run([OCI.runtime, "list"])
        #expect(list.stdout.contains(id) && list.stdout.contains(" running ") && list.stdout.contains(user.name), "\(list.stdout)")
        let pause = try user.run([OCI.runtime, "pause", id])
        #expect(pause.status != 0 && pause.stderr.contains("no cgroup"), "\(pause.stderr)")
        Self.expectNoCgroup(id)
        let delete = try user.run([OCI.runtime, "delete", "--force", id])
        #expect(delete.status == 0, "\(delete.stderr)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: user.runtimeDirectory + "/tandem-runtime")) ?? ["?"]).isEmpty)
        // (Zombies aside: an init that does not reap orphans, as this machine's, keeps the monitor's.)
        let left = try OCI.exec(["/bin/ps", "-u", user.name, "-o", "stat=,args="]).stdout.split(separator: "\n").filter { !$0.hasPrefix("Z") }
        #expect(left.isEmpty, "no process of the user is left: \(left)")
    }

    @Test("refused, naming what: a memory limit without a delegated cgroup; no user namespace; no $XDG_RUNTIME_DIR and no --root")
    func refusals() throws {
        let user = try User()
        defer { user.remove() }
        try #require(try user.run([OCI.runtime, "spec", "--rootless"]).status == 0)
        try user.editConfig { config in
            Self.setArgs(&config, ["true"])
            var linux = config["linux"] as! [String: Any]
            linux["resources"] = ["memory": ["limit": 100_000_000]]
            config["linux"] = linux
        }
        let id = OCI.unique("rl")
        let limited = try user.run([OCI.runtime, "run", id])
        #expect(limited.status != 0 && limited.stderr.contains("linux.resources.memory") && limited.stderr.contains("rootless"), "\(limited.stderr)")
        try user.editConfig { config in
            var linux = config["linux"] as! [String: Any]
            linux.removeValue(forKey: "resources")
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]).filter { $0["type"] as? String != "user" }
            linux.removeValue(forKey: "uidMappings")
            linux.removeValue(forKey: "gidMappings")
            config["linux"] = linux
        }
        let noUserNamespace = try user.run([OCI.runtime, "run", id])
        #expect(noUserNamespace.status != 0 && noUserNamespace.stderr.contains("linux.namespaces") && noUserNamespace.stderr.contains("user namespace"),
                "\(noUserNamespace.stderr)")
        let noDirectory = try user.run([OCI.runtime, "list"], runtimeDirectory: false)
        #expect(noDirectory.status != 0 && noDirectory.stderr.contains("XDG_RUNTIME_DIR"), "\(noDirectory.stderr)")
        Self.expectNoCgroup(id)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: user.runtimeDirectory + "/tandem-runtime")) ?? []).isEmpty)
    }
}

@Suite("tandem ctr rootless, as a real unprivileged user", .serialized,
       .enabled(if: Containers.available && Rootless.toolsPresent, "needs root (to make the user), the image rootfs (make image), useradd and runuser"))
struct CtrRootlessTests {
    @Test("run: the user's uid is root inside, the root is writable (the user's own copy of the image), -d, ps, exec, rm; limits and --userns refused naming the option; nothing left but the image copy")
    func run() throws {
        let user = try RootlessTests.User()
        defer { user.remove() }
        func ctr(_ arguments: [String]) throws -> OCI.Result { try user.run([Tandem.path, "ctr"] + arguments) }
        let first = try ctr(["run", "--", "/bin/sh", "-c", "id -u; cat /proc/self/uid_map; echo written > /etc/probe && cat /etc/probe; stat -c %u /init"])
        #expect(first.status == 0, "\(first.stderr)")
        let lines = first.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ") }
        #expect(lines == ["0", "0 \(user.uid) 1", "written", "0"], "\(first.stdout)")
        #expect(!FileManager.default.fileExists(atPath: Containers.rootfs + "/etc/probe"), "the image itself is untouched")

        let detached = try ctr(["run", "-d", "--name", "svc", "--", "/bin/sleep", "30"])
        #expect(detached.status == 0, "\(detached.stderr)")
        let ps = try ctr(["ps"])
        #expect(ps.stdout.contains("svc") && ps.stdout.contains("running"), "\(ps.stdout) \(ps.stderr)")
        let exec = try ctr(["exec", "svc", "--", "/bin/sh", "-c", "id -u"])
        #expect(exec.status == 0 && exec.stdout == "0\n", "\(exec.stdout) \(exec.stderr)")
        #expect(try ctr(["rm", "-f", "svc"]).status == 0)

        let limited = try ctr(["run", "--memory", "64m", "--", "/bin/true"])
        #expect(limited.status == 125 && limited.stderr.contains("--memory") && limited.stderr.contains("rootless"), "\(limited.stderr)")
        let shifted = try ctr(["run", "--userns", "--", "/bin/true"])
        #expect(shifted.status == 125 && shifted.stderr.contains("--userns"), "\(shifted.stderr)")

        let state = user.runtimeDirectory + "/tandem"
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: state)) ?? []).filter { ![".images", ".names"].contains($0) }
        #expect(left.isEmpty, "nothing left in \(state): \(left)")
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: state + "/.names")) ?? []).isEmpty)
        let processes = try OCI.exec(["/bin/ps", "-u", user.name, "-o", "stat=,args="]).stdout.split(separator: "\n").filter { !$0.hasPrefix("Z") }
        #expect(processes.isEmpty, "\(processes)")
    }
}

enum Rootless {
    static let toolsPresent = ["/usr/sbin/useradd", "/usr/sbin/userdel", "/usr/sbin/runuser", "/usr/bin/newuidmap", "/usr/bin/newgidmap"]
        .allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
}
