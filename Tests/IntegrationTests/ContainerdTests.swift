import Foundation
import Testing

/// containerd (Debian's, started by the test on its own socket, root and state directories) runs
/// containers with tandem-runtime as its runc binary: `ctr run --runc-binary`, the way a
/// Kubernetes RuntimeClass would select it. Its shim (containerd-shim-runc-v2) drives the runc
/// command line: create, start, state, exec, pause, resume, kill, delete.
@Suite("containerd with tandem-runtime as its runc", .serialized,
       .enabled(if: Containerd.available, "needs root, containerd and ctr (Debian's containerd package) and the image rootfs (make image)"))
struct ContainerdTests {
    @Test("ctr run: output and exit status through containerd's shim; run -d, exec, pause, resume, kill, delete; nothing left")
    func lifecycle() throws {
        let daemon = try Containerd()
        defer { daemon.stop() }
        let id = "tandem-" + UUID().uuidString.prefix(8).lowercased()
        daemon.ids = [id, id + "-d"]
        let run = try daemon.ctr(["run", "--rm", "--runc-binary", OCI.runtime, "--rootfs", Containers.rootfs, id,
                                  "/bin/sh", "-c", "echo hello from containerd; exit 3"])
        // (A runtime that loses the status fails here, once, instead of at every later step.)
        try #require(run.status == 3, "\(run.stdout) \(run.stderr)")
        #expect(run.stdout.contains("hello from containerd"))
        daemon.expectNothingLeft(id)

        let detached = id + "-d"
        let started = try daemon.ctr(["run", "-d", "--runc-binary", OCI.runtime, "--rootfs", Containers.rootfs, detached, "/bin/sleep", "60"])
        #expect(started.status == 0, "\(started.stderr)")
        #expect(try daemon.ctr(["task", "ls"]).stdout.contains("RUNNING"))
        let exec = try daemon.ctr(["task", "exec", "--exec-id", "e1", detached, "/bin/sh", "-c", "echo in; exit 4"])
        #expect(exec.status == 4 && exec.stdout == "in\n", "\(exec.stdout) \(exec.stderr)")
        #expect(try daemon.ctr(["task", "pause", detached]).status == 0)
        #expect(try daemon.ctr(["task", "ls"]).stdout.contains("PAUSED"))
        #expect(try daemon.ctr(["task", "resume", detached]).status == 0)
        #expect(try daemon.ctr(["task", "kill", "-s", "SIGKILL", detached]).status == 0)
        var stopped = false
        for _ in 0..<100 where !stopped {
            stopped = try daemon.ctr(["task", "ls"]).stdout.contains("STOPPED")
            if !stopped { usleep(50_000) }
        }
        #expect(stopped)
        #expect(try daemon.ctr(["task", "delete", detached]).status == 0)
        #expect(try daemon.ctr(["container", "delete", detached]).status == 0)
        daemon.expectNothingLeft(detached)
    }
}

/// One containerd for a test: its own socket, root and state under /run and /var/lib, removed after.
final class Containerd {
    static let binary = ["/usr/bin/containerd", "/usr/local/bin/containerd"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let client = ["/usr/bin/ctr", "/usr/local/bin/ctr"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static let available = getuid() == 0 && binary != nil && client != nil && Containers.available && OCI.available

    let base: String
    /// containerd, spawned and reaped with posix_spawn/waitpid: Foundation's Process would wait
    /// for an exit-detection socket that containerd's shims inherit and keep open.
    var pid: pid_t = 0
    var socket: String { base + "/containerd.sock" }

    /// containerd's namespace cgroups (/default in each hierarchy) that were not there before.
    let parentsBefore: Set<String>
    static func namespaceParents() -> Set<String> {
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        return Set((hierarchies.map { "/sys/fs/cgroup/\($0)/default" } + ["/sys/fs/cgroup/default"]).filter { FileManager.default.fileExists(atPath: $0) })
    }

    init() throws {
        parentsBefore = Containerd.namespaceParents()
        base = "/run/tandem-containerd-test-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in 0...2 { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0) }
        let arguments: [String] = [Containerd.binary!, "--address", socket, "--root", base + "/root", "--state", base + "/state"]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let error = posix_spawn(&pid, Containerd.binary!, &actions, nil, argv, environ)
        guard error == 0 else { throw POSIXError(POSIXErrorCode(rawValue: error) ?? .EIO) }
        for _ in 0..<200 {
            if (try? ctr(["version"]).status) == 0 { return }
            usleep(50_000)
        }
        stop()
        throw POSIXError(.ETIMEDOUT)
    }

    /// `ctr` against this containerd, bounded: a runtime that loses the exit status would leave
    /// `ctr run` waiting for ever (killed by timeout(1) after 20 s, it fails the test instead).
    func ctr(_ arguments: [String]) throws -> OCI.Result {
        try OCI.exec(["/usr/bin/timeout", "-s", "KILL", "20", Containerd.client!, "--address", socket] + arguments)
    }

    /// The container's cgroup (containerd's default: /<namespace>/<id>) and tandem-runtime's state
    /// under the shim's runc root are gone.
    func expectNothingLeft(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        for hierarchy in hierarchies + [""] {
            let path = "/sys/fs/cgroup/\(hierarchy)/default/\(id)"
            #expect(!FileManager.default.fileExists(atPath: path), "cgroup left: \(path)", sourceLocation: sourceLocation)
        }
        #expect(!FileManager.default.fileExists(atPath: "/run/containerd/runc/default/\(id)"), "runtime state left", sourceLocation: sourceLocation)
        let mounts = (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? ""
        #expect(!mounts.contains(id), "a mount of \(id) is left", sourceLocation: sourceLocation)
    }

    /// The containers a test made (removed by `stop` if the test did not get that far).
    var ids: [String] = []

    func stop() {
        for id in ids {
            _ = try? ctr(["task", "kill", "-s", "SIGKILL", id])
            _ = try? ctr(["task", "delete", "--force", id])
            _ = try? ctr(["container", "delete", id])
            // What the runtime itself still has (a shim that lost its task leaves it).
            _ = try? OCI.exec([OCI.runtime, "--root", "/run/containerd/runc/default", "delete", "--force", id])
        }
        if pid > 0 {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            pid = 0
        }
        // Shims outlive a containerd by design; this one's go with it.
        _ = try? OCI.exec(["/usr/bin/pkill", "-KILL", "-f", "-e", socket])
        // Its shims exit with their tasks; what containerd mounted for them is gone with them.
        try? FileManager.default.removeItem(atPath: base)
        // containerd leaves its namespace's parent cgroups: the ones this test made go (if empty).
        for parent in Containerd.namespaceParents().subtracting(parentsBefore) { rmdir(parent) }
    }
}
