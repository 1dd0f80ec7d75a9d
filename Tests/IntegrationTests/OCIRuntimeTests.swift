import Foundation
import Testing

/// Runs `tandem-runtime` and `runc` on the same bundles and compares what can be observed.
enum OCI {
    static let runtime: String = {
        if let override = ProcessInfo.processInfo.environment["TANDEM_RUNTIME_BIN"] { return override }
        return URL(fileURLWithPath: Tandem.path).deletingLastPathComponent().appendingPathComponent("tandem-runtime").path
    }()
    static let runc = ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let busybox = ["/usr/bin/busybox", "/bin/busybox"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let available = getuid() == 0 && FileManager.default.isExecutableFile(atPath: runtime) && busybox != nil
    static let differential = available && runc != nil

    /// A bundle: a busybox rootfs and `runc spec`'s config.json (the same file for both runtimes),
    /// adjusted by `edit`.
    final class Bundle {
        let path: String
        var config: [String: Any]

        init(_ edit: (inout [String: Any]) -> Void = { _ in }) throws {
            path = NSTemporaryDirectory() + "tandem-oci-" + UUID().uuidString.prefix(8).lowercased()
            let bin = path + "/rootfs/bin"
            try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
            for directory in ["proc", "sys", "dev", "tmp", "etc", "root"] {
                try FileManager.default.createDirectory(atPath: path + "/rootfs/" + directory, withIntermediateDirectories: true)
            }
            try OCI.install(OCI.busybox!, at: bin + "/busybox")
            for applet in ["sh", "id", "cat", "ls", "hostname", "true", "false", "sleep", "echo", "grep", "sort", "awk", "mkdir", "ulimit", "pwd", "env", "stat", "touch", "head", "tr"] {
                try FileManager.default.createSymbolicLink(atPath: bin + "/" + applet, withDestinationPath: "busybox")
            }
            config = OCI.defaultSpec
            var process = config["process"] as! [String: Any]
            process["terminal"] = false
            config["process"] = process
            edit(&config)
            try save()
        }

        func save() throws {
            try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path + "/config.json"))
        }

        func setArgs(_ args: [String]) throws {
            var process = config["process"] as! [String: Any]
            process["args"] = args
            config["process"] = process
            try save()
        }

        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    /// The spec both runtimes start from: runc's own default (`runc spec`) where runc is installed.
    nonisolated(unsafe) static let defaultSpec: [String: Any] = {
        let directory = NSTemporaryDirectory() + "tandem-oci-spec-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tool = runc.map { [$0, "spec", "--bundle", directory] } ?? [runtime, "spec", "--bundle", directory]
        _ = try? OCI.exec(tool)
        let data = (try? Data(contentsOf: URL(fileURLWithPath: directory + "/config.json"))) ?? Data("{}".utf8)
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:]
    }()

    /// Copies the host's busybox into a bundle through a close-on-exec descriptor. (FileManager's
    /// copy leaves its descriptor inheritable: a process another test spawns meanwhile keeps the
    /// file open for writing, and exec'ing it fails with ETXTBSY. Not a hard link: a test chowns
    /// its rootfs.)
    static func install(_ source: String, at target: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: source))
        let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o755)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let written = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == data.count else { throw POSIXError(.EIO) }
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a command with its output in files, waiting with waitpid. (Foundation's Process waits
    /// for a socket its child inherits to close; a created container, or podman's conmon, keeps
    /// it, so `create` or `podman run -d` would seem to last as long as the container.)
    static func exec(_ command: [String]) throws -> Result {
        let base = NSTemporaryDirectory() + "tandem-oci-out-" + UUID().uuidString
        defer { unlink(base + ".out"); unlink(base + ".err") }
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, base + ".out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, base + ".err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = command.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, command[0], &actions, nil, argv, environ)
        guard error == 0 else { throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EIO) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let stdout = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, stdout: stdout, stderr: stderr)
    }

    /// One runtime with its own state root.
    struct Runtime: CustomStringConvertible {
        let name: String
        let binary: String
        let root: String
        var description: String { name }

        static func both() -> [Runtime] {
            let tag = UUID().uuidString.prefix(8).lowercased()
            return [Runtime(name: "tandem-runtime", binary: OCI.runtime, root: "/run/tandem-oci-test-\(tag)"),
                    Runtime(name: "runc", binary: OCI.runc!, root: "/run/runc-oci-test-\(tag)")]
        }
        static func tandem() -> Runtime {
            Runtime(name: "tandem-runtime", binary: OCI.runtime, root: "/run/tandem-oci-test-" + UUID().uuidString.prefix(8).lowercased())
        }

        @discardableResult
        func callAsFunction(_ arguments: String...) throws -> Result { try run(arguments) }
        func run(_ arguments: [String]) throws -> Result { try OCI.exec([binary, "--root", root] + arguments) }

        func state(_ id: String) throws -> [String: Any] {
            let result = try run(["state", id])
            return (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]) ?? [:]
        }

        /// Waits until the container's state is `status` (at most 5 s).
        func wait(_ id: String, for status: String) throws -> [String: Any] {
            for _ in 0..<500 {
                let state = try state(id)
                if state["status"] as? String == status { return state }
                usleep(10_000)
            }
            return try state(id)
        }

        func cleanUp() { try? FileManager.default.removeItem(atPath: root) }
    }

    static func unique(_ prefix: String) -> String { prefix + "-" + UUID().uuidString.prefix(8).lowercased() }

    /// Nothing of the container is left: state directory, cgroup in any hierarchy, process.
    static func expectNothingLeft(_ id: String, root: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!FileManager.default.fileExists(atPath: root + "/" + id), "state of \(id) is left", sourceLocation: sourceLocation)
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies + [""] {
            let path = "/sys/fs/cgroup/\(hierarchy)/tandem-runtime/\(id)"
            #expect(!FileManager.default.fileExists(atPath: path), "cgroup left: \(path)", sourceLocation: sourceLocation)
        }
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(id), "a mount of \(id) is left", sourceLocation: sourceLocation)
    }
}

@Suite("tandem-runtime vs runc: the same bundle, the same observable behaviour",
       .enabled(if: OCI.differential, "needs root, busybox-static, runc and a built tandem-runtime"), .serialized)
struct OCIDifferentialTests {
    /// What a process can see of its setup, one fact per line.
    static let probe = """
    id; hostname; pwd; echo "env FOO=$FOO"; grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; ulimit -n; \
    awk '$2 !~ /^\\/sys\\/fs\\/cgroup\\// {print $2, $3}' /proc/mounts | sort; \
    ls -l /dev | awk '{print $1, $5, $6, $NF}' | sort; \
    cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; \
    cat /proc/sys/net/ipv4/ip_forward; cat /proc/self/uid_map; mkdir /tmp/x 2>&1; touch /proc/sys/x 2>&1; cat /proc/kcore 2>&1 | head -c 1 | wc -c; \
    echo "lo flags $(cat /sys/class/net/lo/flags)"
    """

    @Test("what the process sees: ids, hostname, cwd, env, capabilities, rlimits, mounts, /dev, limits, sysctl, seccomp")
    func processView() throws {
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["sh", "-c", OCIDifferentialTests.probe]
            process["env"] = (process["env"] as! [String]) + ["FOO=bar"]
            process["cwd"] = "/tmp"
            process["user"] = ["uid": 1000, "gid": 1000, "additionalGids": [5, 6]]
            process["rlimits"] = [["type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024]]
            var caps = process["capabilities"] as! [String: Any]
            caps["bounding"] = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW"]
            caps["effective"] = ["CAP_KILL"]
            caps["permitted"] = ["CAP_KILL", "CAP_CHOWN"]
            process["capabilities"] = caps
            config["process"] = process
            config["hostname"] = "differential"
            var root = config["root"] as! [String: Any]
            root["readonly"] = false
            config["root"] = root
            var linux = config["linux"] as! [String: Any]
            linux["resources"] = ["memory": ["limit": 64 << 20], "pids": ["limit": 42], "devices": [["allow": false, "access": "rwm"]]]
            linux["sysctl"] = ["net.ipv4.ip_forward": "1"]
            linux["seccomp"] = ["defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [["names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1]]]
            linux["devices"] = [["path": "/dev/tandem-null", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0]]
            config["linux"] = linux
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o1777], ofItemAtPath: bundle.path + "/rootfs/tmp")
        var outputs: [String: String] = [:]
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            let id = OCI.unique("view")
            let result = try runtime("run", "--bundle", bundle.path, id)
            #expect(result.status == 0, "\(runtime): \(result.stderr)")
            outputs[runtime.name] = result.stdout
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        let tandem = outputs["tandem-runtime"] ?? "", runc = outputs["runc"] ?? ""
        #expect(tandem == runc, "tandem-runtime and runc differ:\n--- tandem-runtime\n\(tandem)\n--- runc\n\(runc)")
        #expect(tandem.contains("uid=1000 gid=1000 groups=5,6"))
        #expect(tandem.contains("67108864\n42\n"))
        #expect(tandem.contains("Operation not permitted"))  // seccomp's EPERM for mkdir
        #expect(tandem.contains("lo flags 0x9"), "a new network namespace has lo up (IFF_UP|IFF_LOOPBACK), as with runc")
    }

    @Test("a process.cwd the rootfs lacks is made (root, 0755), as runc makes it, on the rootfs itself")
    func missingCwd() throws {
        var outputs: [String: String] = [:]
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            let bundle = try OCI.Bundle { config in
                var process = config["process"] as! [String: Any]
                process["args"] = ["sh", "-c", "pwd; stat -c '%u %a' ."]
                process["cwd"] = "/made/by/the/runtime"
                config["process"] = process
                var root = config["root"] as! [String: Any]
                root["readonly"] = false
                config["root"] = root
            }
            let id = OCI.unique("cwd")
            let result = try runtime("run", "--bundle", bundle.path, id)
            #expect(result.status == 0, "\(runtime): \(result.stderr)")
            outputs[runtime.name] = result.stdout
            #expect(FileManager.default.fileExists(atPath: bundle.path + "/rootfs/made/by/the/runtime"), "\(runtime)")
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        #expect(outputs["tandem-runtime"] == outputs["runc"], "\(outputs)")
        #expect(outputs["tandem-runtime"] == "/made/by/the/runtime\n0 755\n")
    }

    @Test("a user namespace with mappings: the same ids and maps inside")
    func userNamespace() throws {
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map; stat -c '%u %g' /"]
            config["process"] = process
            var linux = config["linux"] as! [String: Any]
            linux["namespaces"] = (linux["namespaces"] as! [[String: Any]]) + [["type": "user"]]
            linux["uidMappings"] = [["containerID": 0, "hostID": 300000, "size": 65536]]
            linux["gidMappings"] = [["containerID": 0, "hostID": 300000, "size": 65536]]
            config["linux"] = linux
        }
        _ = try OCI.exec(["/bin/chown", "-R", "300000:300000", bundle.path + "/rootfs"])
        var outputs: [String] = []
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            let id = OCI.unique("userns")
            let result = try runtime("run", "--bundle", bundle.path, id)
            #expect(result.status == 0, "\(runtime): \(result.stderr)")
            outputs.append(result.stdout)
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        #expect(outputs.count == 2 && outputs[0] == outputs[1], "\(outputs)")
        #expect(outputs.first?.contains("300000") == true)
    }

    @Test("lifecycle: create → created (waiting at its entry point) → start → running → stopped → delete; same states, exit status kept")
    func lifecycle() throws {
        let bundle = try OCI.Bundle()
        let marker = bundle.path + "/rootfs/tmp/started"
        try bundle.setArgs(["sh", "-c", "touch /tmp/started; sleep 0.3; exit 7"])
        var root = bundle.config["root"] as! [String: Any]
        root["readonly"] = false
        bundle.config["root"] = root
        try bundle.save()
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            try? FileManager.default.removeItem(atPath: marker)
            let id = OCI.unique("life")
            let pidFile = bundle.path + "/pid"
            let created = try runtime("create", "--bundle", bundle.path, "--pid-file", pidFile, id)
            #expect(created.status == 0, "\(runtime): \(created.stderr)")
            var state = try runtime.state(id)
            #expect(state["status"] as? String == "created", "\(runtime)")
            let pid = state["pid"] as? Int ?? 0
            #expect(pid > 0 && kill(pid_t(pid), 0) == 0, "\(runtime): the created process exists")
            #expect((try? String(contentsOfFile: pidFile, encoding: .utf8)) == String(pid), "\(runtime): --pid-file")
            #expect(state["id"] as? String == id)
            #expect(state["bundle"] as? String == bundle.path)
            usleep(200_000)
            #expect(!FileManager.default.fileExists(atPath: marker), "\(runtime): the program must not run before start")
            let started = try runtime("start", id)
            #expect(started.status == 0, "\(runtime): \(started.stderr)")
            state = try runtime.state(id)
            #expect(state["status"] as? String == "running", "\(runtime)")
            let again = try runtime("start", id)
            #expect(again.status != 0, "\(runtime): starting twice is an error")
            state = try runtime.wait(id, for: "stopped")
            #expect(state["status"] as? String == "stopped", "\(runtime)")
            #expect(FileManager.default.fileExists(atPath: marker))
            if runtime.name == "tandem-runtime" { #expect(state["exitStatus"] as? Int == 7, "the monitor keeps the exit status") }
            let deleted = try runtime("delete", id)
            #expect(deleted.status == 0, "\(runtime): \(deleted.stderr)")
            #expect(try runtime("state", id).status != 0, "\(runtime): state of a deleted container is an error")
            OCI.expectNothingLeft(id, root: runtime.root)
        }
    }

    @Test("kill by name, SIG-name and number; delete refuses a running container without --force")
    func killAndDelete() throws {
        let bundle = try OCI.Bundle()
        try bundle.setArgs(["sleep", "60"])
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            // (TERM would be ignored: the container's PID 1, sleep, has no handler for it.)
            for signal in ["KILL", "SIGKILL", "9"] {
                let id = OCI.unique("kill")
                #expect(try runtime("run", "--detach", "--bundle", bundle.path, id).status == 0, "\(runtime)")
                #expect(try runtime.state(id)["status"] as? String == "running")
                let refused = try runtime("delete", id)
                #expect(refused.status != 0, "\(runtime): deleting a running container needs --force")
                let killed = try runtime("kill", id, signal)
                #expect(killed.status == 0, "\(runtime) kill \(signal): \(killed.stderr)")
                #expect(try runtime.wait(id, for: "stopped")["status"] as? String == "stopped", "\(runtime) kill \(signal)")
                #expect(try runtime("kill", id, "KILL").status != 0, "\(runtime): killing a stopped container is an error")
                #expect(try runtime("delete", id).status == 0)
                OCI.expectNothingLeft(id, root: runtime.root)
            }
            let id = OCI.unique("force")
            #expect(try runtime("run", "--detach", "--bundle", bundle.path, id).status == 0)
            #expect(try runtime("kill", id, "NOSUCHSIGNAL").status != 0, "\(runtime): an unknown signal is an error")
            let forced = try runtime("delete", "--force", id)
            #expect(forced.status == 0, "\(runtime): \(forced.stderr)")
            OCI.expectNothingLeft(id, root: runtime.root)
        }
    }

    @Test("hooks: the same order, each with the state on stdin; container hooks in the container's namespaces")
    func hooks() throws {
        let bundle = try OCI.Bundle()
        let hook = bundle.path + "/hook.sh"
        // createRuntime (run on the host) also notes the container process's pids cgroup then:
        // it is in its cgroups before the hooks run (runc: the same).
        let script = "#!/bin/sh\nread -r state\necho \"$1 $state\" >> \"$2\"\n"
            + "if [ \"$1\" = createRuntime ]; then pid=$(echo \"$state\" | sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
            + "grep ':pids:' /proc/$pid/cgroup > \"$2.cgroup\"; fi\n"
        // The same path on the host and inside the root: startContainer's path resolves in the container.
        for path in [hook, bundle.path + "/rootfs" + hook] {
            try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
            try script.write(toFile: path, atomically: true, encoding: .utf8)
            chmod(path, 0o755)
        }
        let log = bundle.path + "/hooks.log"
        var hooks: [String: Any] = [:]
        for kind in ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] {
            hooks[kind] = [["path": hook, "args": ["hook.sh", kind, log], "env": ["PATH=/bin:/usr/bin"], "timeout": 5]]
        }
        bundle.config["hooks"] = hooks
        var root = bundle.config["root"] as! [String: Any]
        root["readonly"] = false
        bundle.config["root"] = root
        try bundle.setArgs(["true"])
        var logs: [String: [(kind: String, state: [String: Any])]] = [:]
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            for file in [log, bundle.path + "/rootfs" + log, log + ".cgroup"] { try? FileManager.default.removeItem(atPath: file) }
            let id = OCI.unique("hooks")
            #expect(try runtime("create", "--bundle", bundle.path, id).status == 0, "\(runtime)")
            let pid = try runtime.state(id)["pid"] as? Int ?? -1
            #expect(try runtime("start", id).status == 0, "\(runtime)")
            _ = try runtime.wait(id, for: "stopped")
            #expect(try runtime("delete", id).status == 0, "\(runtime)")
            // Runtime-namespace hooks wrote to the host's log, startContainer to the container's.
            let host = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            let inside = (try? String(contentsOfFile: bundle.path + "/rootfs" + log, encoding: .utf8)) ?? ""
            var entries: [(String, [String: Any])] = []
            for line in (host + inside).split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1)
                let state = (try? JSONSerialization.jsonObject(with: Data(parts.last!.utf8)) as? [String: Any]) ?? [:]
                entries.append((String(parts[0]), state))
                #expect(state["id"] as? String == id, "\(runtime) \(parts[0]): the state names the container")
                #expect(state["bundle"] as? String == bundle.path, "\(runtime) \(parts[0])")
            }
            for entry in entries where entry.0 == "prestart" || entry.0 == "createRuntime" || entry.0 == "poststart" {
                #expect(entry.1["pid"] as? Int == pid, "\(runtime) \(entry.0): the container's host pid")
            }
            let cgroupAtHook = (try? String(contentsOfFile: log + ".cgroup", encoding: .utf8)) ?? ""
            #expect(cgroupAtHook.hasSuffix("/\(id)\n"), "\(runtime): at createRuntime the process is in its pids cgroup: \(cgroupAtHook)")
            logs[runtime.name] = entries.map { (kind: $0.0, state: $0.1) }
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        let order = { (name: String) in (logs[name] ?? []).map(\.kind) }
        // startContainer's line is in the container's log; order the host's lines and check it is there.
        #expect(order("tandem-runtime").filter { $0 != "startContainer" } == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"])
        #expect(order("tandem-runtime") == order("runc"), "tandem-runtime: \(order("tandem-runtime")), runc: \(order("runc"))")
        for name in ["tandem-runtime", "runc"] {
            let statuses = (logs[name] ?? []).map { "\($0.kind)=\($0.state["status"] as? String ?? "?")" }
            #expect(statuses.contains("prestart=creating") && statuses.contains("createRuntime=creating") && statuses.contains("poststop=stopped"), "\(name): \(statuses)")
        }
    }

    /// (The processes it sees are counted by the shell's own glob: `ls /proc | grep` raced with
    /// grep's start, 3 or 4 by load.)
    @Test("exec runs in the container's namespaces, cgroup and identity; its status comes back")
    func exec() throws {
        let bundle = try OCI.Bundle()
        try bundle.setArgs(["sleep", "60"])
        var outputs: [String] = []
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            let id = OCI.unique("exec")
            #expect(try runtime("run", "--detach", "--bundle", bundle.path, id).status == 0)
            let result = try runtime("exec", "--env", "X=1", "--cwd", "/tmp", id, "sh", "-c",
                                     "hostname; pwd; echo X=$X; grep CapEff /proc/self/status; set -- /proc/[0-9]*; echo $#; exit 3")
            #expect(result.status == 3, "\(runtime): \(result.stderr)")
            outputs.append(result.stdout)
            let missing = try runtime("exec", id, "/no/such/program")
            #expect(missing.status != 0, "\(runtime)")
            #expect(try runtime("delete", "--force", id).status == 0)
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        #expect(outputs.count == 2 && outputs[0] == outputs[1], "\(outputs)")
    }

    /// Broken configs: what is wrong, the field tandem-runtime's error must name, and whether runc
    /// 1.1 refuses it too at create (it accepts unknown capabilities, with a warning, ignores
    /// mappings without a user namespace, and takes a NUL in the hostname and a writable bind of
    /// the host's /proc/sys; tandem-runtime refuses all four). A lone surrogate is no error: it
    /// reads as U+FFFD (it used to crash the monitor).
    static let invalid: [(String, String, Bool)] = [
        ("a uid that is a string", "process.user.uid", true), ("no root", "root", true),
        ("an unknown namespace", "linux.namespaces[5].type", true), ("mappings without a user namespace", "linux.uidMappings", false),
        ("an unknown capability", "process.capabilities.bounding", false), ("a program that is not in the rootfs", "process.args[0]", true),
        ("a host-wide sysctl", "linux.sysctl.kernel.panic", true), ("invalid JSON", "not valid JSON", true),
        ("uid 4294967295", "process.user.uid", true), ("gid 4294967295 with uid 1000", "process.user.gid", true),
        ("a NUL byte in args", "process.args[0]", true), ("a NUL byte in the hostname", "hostname", false),
        ("root.path ../../../..", "root.path", true), ("a writable bind of the host's /proc/sys", "mounts[", false),
        ("a lone surrogate in a string", "process.env", false), ("a memory limit of 1 byte", "linux.resources.memory.limit 1", true),
        ("a memory limit of 0", "linux.resources.memory", false),
    ] + OCIDifferentialTests.securityModuleCases
    /// A profile or label for a security module the host does not run: the container would run
    /// unconfined (runc refuses all three; crun the first two).
    static var securityModuleCases: [(String, String, Bool)] {
        let appArmor = (try? String(contentsOfFile: "/sys/module/apparmor/parameters/enabled", encoding: .utf8))?.hasPrefix("Y") ?? false
        let seLinux = FileManager.default.fileExists(atPath: "/sys/fs/selinux/enforce")
        return (appArmor ? [] : [("an AppArmor profile without AppArmor", "process.apparmorProfile", true)])
            + (seLinux ? [] : [("an SELinux label without SELinux", "process.selinuxLabel", true),
                               ("an SELinux mount label without SELinux", "linux.mountLabel", true)])
    }
    /// Cases that are no error (any more): the container is created as runc creates it.
    static let accepted: Set<String> = ["a lone surrogate in a string", "a memory limit of 0"]

    static func breakConfig(_ what: String, _ c: inout [String: Any]) {
        var p = c["process"] as! [String: Any], l = c["linux"] as! [String: Any]
        switch what {
        case "a uid that is a string": p["user"] = ["uid": "root", "gid": 0]
        case "no root": c.removeValue(forKey: "root")
        case "an unknown namespace": l["namespaces"] = (l["namespaces"] as! [[String: Any]]) + [["type": "bogus"]]
        case "mappings without a user namespace":
            l["uidMappings"] = [["containerID": 0, "hostID": 1000, "size": 1]]
            l["gidMappings"] = [["containerID": 0, "hostID": 1000, "size": 1]]
        case "an unknown capability":
            var caps = p["capabilities"] as! [String: Any]
            caps["bounding"] = ["CAP_NOT_A_THING"]
            p["capabilities"] = caps
        case "a program that is not in the rootfs": p["args"] = ["/no/such/program"]
        case "a host-wide sysctl": l["sysctl"] = ["kernel.panic": "1"]
        case "a memory limit of 1 byte", "a memory limit of 0":
            var resources = l["resources"] as? [String: Any] ?? [:]
            resources["memory"] = ["limit": what == "a memory limit of 0" ? 0 : 1]
            l["resources"] = resources
        case "uid 4294967295": p["user"] = ["uid": 4_294_967_295, "gid": 0]
        case "gid 4294967295 with uid 1000": p["user"] = ["uid": 1000, "gid": 4_294_967_295]
        case "a NUL byte in args": p["args"] = ["sh\u{0}x"]
        case "a NUL byte in the hostname": c["hostname"] = "ta\u{0}ndem"
        case "root.path ../../../..": c["root"] = ["path": "../../../../../../../.."]
        case "an AppArmor profile without AppArmor": p["apparmorProfile"] = "docker-default"
        case "an SELinux label without SELinux": p["selinuxLabel"] = "system_u:system_r:container_t:s0"
        case "an SELinux mount label without SELinux": l["mountLabel"] = "system_u:object_r:container_file_t:s0"
        case "a writable bind of the host's /proc/sys":
            c["mounts"] = (c["mounts"] as! [[String: Any]]) + [["destination": "/mnt", "type": "bind", "source": "/proc/sys", "options": ["rbind"]]]
        default: break
        }
        c["process"] = p
        c["linux"] = l
    }

    @Test("invalid configs: refused (by runc too, where runc checks); tandem-runtime names the field and leaves nothing behind",
          arguments: OCIDifferentialTests.invalid.map(\.0))
    func invalidConfig(_ what: String) throws {
        let (_, field, runcRefuses) = OCIDifferentialTests.invalid.first { $0.0 == what }!
        let bundle = try OCI.Bundle { OCIDifferentialTests.breakConfig(what, &$0) }
        if what == "invalid JSON" { try "{\"ociVersion\": \"1.0.2\", \"root\": ".write(toFile: bundle.path + "/config.json", atomically: true, encoding: .utf8) }
        if what == "a lone surrogate in a string" {
            // JSONSerialization cannot write one: put it in by hand. It used to crash the monitor; it
            // reads as U+FFFD now, and the container is created and deleted cleanly.
            let text = try String(contentsOfFile: bundle.path + "/config.json", encoding: .utf8)
            try text.replacingOccurrences(of: "\"PATH=", with: "\"X=\\ud800\\u0041\", \"PATH=").write(toFile: bundle.path + "/config.json", atomically: true, encoding: .utf8)
        }
        for runtime in OCI.Runtime.both() {
            defer { runtime.cleanUp() }
            let id = OCI.unique("bad")
            let result = try runtime("create", "--bundle", bundle.path, id)
            if OCIDifferentialTests.accepted.contains(what) {
                #expect(result.status == 0, "\(runtime): \(result.stderr)")
            } else {
                if runtime.name == "tandem-runtime" || runcRefuses { #expect(result.status != 0, "\(runtime) accepted \(what)") }
                if runtime.name == "tandem-runtime" {
                    #expect(result.stderr.contains(field), "the error names \(field): \(result.stderr)")
                }
            }
            _ = try? runtime("delete", "--force", id)
            OCI.expectNothingLeft(id, root: runtime.root)
        }
    }
}

@Suite("tandem-runtime on its own", .enabled(if: OCI.available, "needs root, busybox-static and a built tandem-runtime"), .serialized)
struct OCIRuntimeCommandTests {
    @Test("a monitor killed while the container is created leaves nothing once deleted; the process does not run")
    func monitorKilled() throws {
        let bundle = try OCI.Bundle()
        try bundle.setArgs(["sleep", "60"])
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("crash")
        #expect(try runtime("create", "--bundle", bundle.path, id).status == 0)
        let record = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runtime.root + "/\(id)/state.json"))) as! [String: Any]
        kill(pid_t(record["monitor"] as! Int), SIGKILL)
        #expect(try runtime.wait(id, for: "stopped")["status"] as? String == "stopped")
        #expect(try runtime("delete", id).status == 0)
        OCI.expectNothingLeft(id, root: runtime.root)
    }

    @Test("create, interrupted by Ctrl-C while its hook runs, leaves nothing behind")
    func interruptedCreate() throws {
        let bundle = try OCI.Bundle { config in
            config["hooks"] = ["createRuntime": [["path": "/bin/sleep", "args": ["sleep", "5"]]]]
        }
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("sigint")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: OCI.runtime)
        process.arguments = ["--root", runtime.root, "create", "--bundle", bundle.path, id]
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(500_000)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        #expect(process.terminationStatus != 0)
        usleep(200_000)
        OCI.expectNothingLeft(id, root: runtime.root)
    }

    @Test("namespaces joined by path (network, ipc, uts, pid) and an absolute cgroupsPath")
    func joinAndCgroupsPath() throws {
        let first = try OCI.Bundle()
        try first.setArgs(["sleep", "60"])
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let host = OCI.unique("host")
        #expect(try runtime("run", "--detach", "--bundle", first.path, host).status == 0)
        defer { _ = try? runtime("delete", "--force", host) }
        let pid = try runtime.state(host)["pid"] as? Int ?? 0
        let leaf = OCI.unique("leaf")
        let second = try OCI.Bundle { config in
            var linux = config["linux"] as! [String: Any]
            linux["namespaces"] = [["type": "mount"], ["type": "network", "path": "/proc/\(pid)/ns/net"],
                                   ["type": "ipc", "path": "/proc/\(pid)/ns/ipc"], ["type": "uts", "path": "/proc/\(pid)/ns/uts"],
                                   ["type": "pid", "path": "/proc/\(pid)/ns/pid"]]
            linux["cgroupsPath"] = "/tandem-oci-test/\(leaf)"
            config["linux"] = linux
            config.removeValue(forKey: "hostname")
        }
        try second.setArgs(["sh", "-c", "ls -l /proc/self/ns/; cat /proc/self/cgroup"])
        let joined = try runtime("run", "--bundle", second.path, OCI.unique("joined"))
        #expect(joined.status == 0, "\(joined.stderr)")
        for namespace in ["net", "ipc", "uts", "pid"] {
            let theirs = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/\(namespace)")) ?? "?"
            #expect(joined.stdout.contains(theirs), "\(namespace): \(theirs) not in \(joined.stdout)")
        }
        #expect(joined.stdout.contains("memory:/tandem-oci-test/\(leaf)"), "\(joined.stdout)")
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies {
            #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\(hierarchy)/tandem-oci-test/\(leaf)"), "cgroup left in \(hierarchy)")
        }
    }

    @Test("a duplicate id, a missing bundle and a missing container are errors that say so")
    func errors() throws {
        let bundle = try OCI.Bundle()
        try bundle.setArgs(["sleep", "60"])
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("dup")
        #expect(try runtime("create", "--bundle", bundle.path, id).status == 0)
        let duplicate = try runtime("create", "--bundle", bundle.path, id)
        #expect(duplicate.status != 0 && duplicate.stderr.contains("already exists"), "\(duplicate.stderr)")
        #expect(try runtime.state(id)["status"] as? String == "created", "the first container is untouched")
        #expect(try runtime("delete", id).status == 0, "a created container can be deleted")
        let missing = try runtime("create", "--bundle", "/no/such/bundle", OCI.unique("x"))
        #expect(missing.status != 0 && missing.stderr.contains("/no/such/bundle"), "\(missing.stderr)")
        let unknown = try runtime("state", "no-such-container")
        #expect(unknown.status != 0 && unknown.stderr.contains("does not exist"), "\(unknown.stderr)")
        let badID = try runtime("state", "../etc")
        #expect(badID.status != 0 && badID.stderr.contains("invalid container id"))
        let systemd = try OCI.exec([OCI.runtime, "--systemd-cgroup", "list"])
        #expect(systemd.status != 0 && systemd.stderr.contains("not supported"))
        OCI.expectNothingLeft(id, root: runtime.root)
    }

    @Test("annotations: in state as the config gave them; a few travel in state.json, many go to a file written once")
    func annotations() throws {
        let many = Dictionary(uniqueKeysWithValues: (0..<500).map { ("org.example.n\($0)", "value \($0)") })
        for (annotations, inline) in [(["org.example.a": "1", "org.example.b": "two"], true), (many, false)] {
            let bundle = try OCI.Bundle { config in
                config["annotations"] = annotations
                var process = config["process"] as! [String: Any]
                process["args"] = ["sleep", "60"]
                config["process"] = process
            }
            let runtime = OCI.Runtime.tandem()
            defer { runtime.cleanUp() }
            let id = OCI.unique("notes")
            #expect(try runtime("create", "--bundle", bundle.path, id).status == 0)
            let state = try runtime.state(id)
            #expect(state["annotations"] as? [String: String] == annotations)
            let file = try String(contentsOfFile: runtime.root + "/\(id)/state.json", encoding: .utf8)
            let separate = FileManager.default.fileExists(atPath: runtime.root + "/\(id)/annotations.json")
            if inline {
                #expect(file.contains("org.example.a") && !separate, "a few: in state.json, no file of their own")
            } else {
                #expect(!file.contains("org.example.n1") && separate, "many: state.json, rewritten at every step, does not carry them")
            }
            #expect(try runtime("delete", "--force", id).status == 0)
            OCI.expectNothingLeft(id, root: runtime.root)
        }
    }

    @Test("list, ps, pause/resume, spec and features")
    func commands() throws {
        let bundle = try OCI.Bundle()
        try bundle.setArgs(["sh", "-c", "sleep 60 & sleep 60"])
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let id = OCI.unique("cmds")
        #expect(try runtime("run", "-d", "--bundle", bundle.path, id).status == 0)
        let list = try runtime("list")
        #expect(list.stdout.contains(id) && list.stdout.contains("running"), "\(list.stdout)")
        #expect(try runtime("list", "-q").stdout == id + "\n")
        usleep(100_000)
        let pids = try JSONSerialization.jsonObject(with: Data(try runtime("ps", "--format", "json", id).stdout.utf8)) as? [Int]
        #expect(pids?.count == 2, "\(String(describing: pids))")
        #expect(try runtime("ps", id).stdout.contains("sleep 60"))
        #expect(try runtime("pause", id).status == 0)
        #expect(try runtime.state(id)["status"] as? String == "paused", "state says paused, as runc's")
        #expect(try runtime("list").stdout.contains("paused"))
        let frozenExec = try runtime("exec", id, "true")
        #expect(frozenExec.status != 0 && frozenExec.stderr.contains("paused"), "exec into a paused container is refused: \(frozenExec.stderr)")
        #expect(try runtime("pause", id).status != 0, "pausing twice is refused")
        #expect(try runtime("resume", id).status == 0)
        #expect(try runtime.state(id)["status"] as? String == "running")
        #expect(try runtime("pause", id).status == 0)
        #expect(try runtime("delete", "-f", id).status == 0, "a paused container is deleted with --force")
        OCI.expectNothingLeft(id, root: runtime.root)

        let spec = NSTemporaryDirectory() + OCI.unique("spec")
        try FileManager.default.createDirectory(atPath: spec, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: spec) }
        #expect(try runtime("spec", "--bundle", spec).status == 0)
        let written = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: spec + "/config.json"))) as? [String: Any]
        #expect((written?["process"] as? [String: Any])?["args"] as? [String] == ["sh"])
        #expect(try runtime("spec", "--bundle", spec).status != 0, "spec refuses to overwrite config.json")
        let features = try JSONSerialization.jsonObject(with: Data(try runtime("features").stdout.utf8)) as? [String: Any]
        #expect((features?["hooks"] as? [String])?.count == 6)
    }

    @Test("a terminal: the pty's master arrives on --console-socket, the container's stdio is the pty")
    func consoleSocket() throws {
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["terminal"] = true
            process["args"] = ["sh", "-c", "test -t 0 && test -t 1 && echo tty-ok; sleep 0.2"]
            config["process"] = process
        }
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let socketPath = bundle.path + "/console.sock"
        // A listener in Python stands in for podman's conmon: receive the master, read it.
        let receiver = Process()
        receiver.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        receiver.arguments = ["-c", """
        import socket, array, os, sys
        s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(1); c, _ = s.accept()
        msg, anc, flags, addr = c.recvmsg(256, socket.CMSG_LEN(4))
        fd = array.array('i', anc[0][2])[0]
        out = b''
        while True:
            try:
                d = os.read(fd, 1024)
            except OSError: break
            if not d: break
            out += d
            if b'tty-ok' in out: break
        print(out.decode(errors='replace'))
        """, socketPath]
        let output = Pipe()
        receiver.standardOutput = output
        try receiver.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socketPath) { usleep(10_000) }
        let id = OCI.unique("tty")
        let result = try runtime("run", "--detach", "--console-socket", socketPath, "--bundle", bundle.path, id)
        #expect(result.status == 0, "\(result.stderr)")
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        receiver.waitUntilExit()
        #expect(text.contains("tty-ok"), "\(text)")
        _ = try runtime.wait(id, for: "stopped")
        #expect(try runtime("delete", id).status == 0)
        OCI.expectNothingLeft(id, root: runtime.root)
    }
}

@Suite("podman --runtime tandem-runtime", .enabled(if: OCI.available && FileManager.default.isExecutableFile(atPath: "/usr/bin/podman"),
                                                 "needs root, podman (apt-get install podman) and a built tandem-runtime"), .serialized)
struct PodmanTests {
    /// podman's defaults ask for RLIMIT_NOFILE 1048576; a host whose root may not raise limits
    /// (this sandbox) refuses that with runc too, so the test asks for modest ones.
    static let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]

    func podman(_ arguments: [String]) throws -> OCI.Result {
        try OCI.exec(["/usr/bin/podman", "--runtime", OCI.runtime, "--cgroup-manager", "cgroupfs"] + arguments)
    }

    @Test("run (exit status through conmon), run -d, exec, stop, rm: nothing left")
    func lifecycle() throws {
        let bundle = try OCI.Bundle()
        let rootfs = bundle.path + "/rootfs"
        let run = try podman(["run", "--rm"] + Self.limits + ["--network", "none", "--rootfs", rootfs, "/bin/sh", "-c", "echo hello from podman; exit 4"])
        #expect(run.stdout.contains("hello from podman"), "\(run.stderr)")
        #expect(run.status == 4, "conmon reaps the container and passes its status on: \(run.stderr)")
        let detached = try podman(["run", "-d"] + Self.limits + ["--network", "none", "--rootfs", rootfs, "sleep", "30"])
        #expect(detached.status == 0, "\(detached.stderr)")
        let id = detached.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let exec = try podman(["exec", id, "sh", "-c", "echo exec-ok"])
        #expect(exec.stdout.contains("exec-ok"), "\(exec.stderr)")
        #expect(try podman(["stop", "-t", "1", id]).status == 0)
        #expect(try podman(["rm", id]).status == 0)
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "/run/tandem-runtime")) ?? []
        #expect(!left.contains { id.hasPrefix($0) || $0.hasPrefix(id) }, "state left: \(left)")
    }
}
