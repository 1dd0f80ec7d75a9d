import Foundation
import Testing

/// How a container's processes get into its cgroups. On cgroup v1 a process moved by writing its
/// pid to `cgroup.procs` (what runc and crun do) takes the kernel's global cgroup_threadgroup_rwsem
/// for writing, which first waits for an RCU grace period: 7–25 ms on this host whenever no move
/// preceded it by a few ms, i.e. on a user's single `run`. A single-threaded process writing "0" to
/// a `tasks` file moves only itself and skips that lock. Which of the two happened is seen with
/// strace (the time it saves is a benchmark's figure: `scripts/bench_cgroup_join.py`).
enum Strace {
    static let path = ["/usr/bin/strace", "/bin/strace"].first { FileManager.default.isExecutableFile(atPath: $0) }
    /// A v1 (or hybrid) host: the pids controller has its own hierarchy with a tasks file.
    static let v1 = FileManager.default.fileExists(atPath: "/sys/fs/cgroup/pids/tasks")
}

@Suite("containers join their v1 cgroups themselves, through the tasks files",
       .enabled(if: OCI.available && Strace.path != nil && Strace.v1,
                "needs root, busybox-static, a built tandem-runtime, strace and v1 cgroup controllers"))
struct CgroupJoinTests {
    /// The writes into cgroup files under `id`'s directories, as strace -y printed them:
    /// (file, what was written).
    static func cgroupWrites(_ trace: String, id: String) -> [(file: String, value: String)] {
        trace.split(separator: "\n").compactMap { line in
            // 1234  write(5</sys/fs/cgroup/pids/tandem-runtime/ID/tasks>, "0", 1) = 1
            guard let open = line.range(of: "write("), let lt = line[open.upperBound...].firstIndex(of: "<"),
                  let gt = line[lt...].firstIndex(of: ">") else { return nil }
            let file = String(line[line.index(after: lt)..<gt])
            guard file.hasPrefix("/sys/fs/cgroup/"), file.contains("/\(id)/") else { return nil }
            let rest = line[gt...]
            guard let q1 = rest.firstIndex(of: "\""), let q2 = rest[rest.index(after: q1)...].firstIndex(of: "\"") else { return nil }
            return (file, String(rest[rest.index(after: q1)..<q2]))
        }
    }

    static func traced(_ arguments: [String], trace: String) throws -> OCI.Result {
        try OCI.exec([Strace.path!, "-f", "-y", "-qq", "-s", "64", "-e", "trace=write", "-o", trace] + arguments)
    }

    @Test("run: the container's process writes \"0\" to its tasks file in every hierarchy; nobody writes a pid to its cgroup.procs")
    func runJoinsThroughTasks() throws {
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["true"]
            config["process"] = process
        }
        let id = OCI.unique("join")
        let trace = NSTemporaryDirectory() + "tandem-join-" + id + ".trace"
        defer { unlink(trace) }
        let result = try Self.traced([runtime.binary, "--root", runtime.root, "run", "--bundle", bundle.path, id], trace: trace)
        #expect(result.status == 0, "\(result.stderr)")
        let writes = Self.cgroupWrites(try String(contentsOfFile: trace, encoding: .utf8), id: id)
        let joined = Set(writes.filter { $0.file.hasSuffix("/tasks") && $0.value == "0" }.map { ($0.file as NSString).deletingLastPathComponent })
        let hierarchies = ["pids", "memory", "devices", "freezer"].filter { FileManager.default.fileExists(atPath: "/sys/fs/cgroup/\($0)/tasks") }
        for controller in hierarchies {
            #expect(joined.contains { $0.hasPrefix("/sys/fs/cgroup/\(controller)/") }, "no \"0\" written to a tasks file of \(id) in \(controller): \(writes)")
        }
        #expect(!writes.contains { $0.file.hasSuffix("/cgroup.procs") }, "a pid written to cgroup.procs: \(writes)")
        OCI.expectNothingLeft(id, root: runtime.root)
    }

    @Test("exec: the process that joins the running container writes \"0\" to its tasks files, and runs in them")
    func execJoinsThroughTasks() throws {
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["sleep", "30"]
            config["process"] = process
        }
        let id = OCI.unique("join")
        defer {
            _ = try? runtime("delete", "--force", id)
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        try #require(try runtime("create", "--bundle", bundle.path, id).status == 0)
        try #require(try runtime("start", id).status == 0)
        let trace = NSTemporaryDirectory() + "tandem-join-" + id + ".trace"
        defer { unlink(trace) }
        let result = try Self.traced([runtime.binary, "--root", runtime.root, "exec", id, "cat", "/proc/1/cgroup", "/proc/self/cgroup"], trace: trace)
        #expect(result.status == 0, "\(result.stderr)")
        // The container's first process and the exec'd one, seen from inside: the same cgroups.
        for controller in [":pids:", ":memory:"] {
            let lines = result.stdout.split(separator: "\n").filter { $0.contains(controller) }
            #expect(lines.count == 2 && lines[0] == lines[1], "\(controller) \(result.stdout)")
        }
        let writes = Self.cgroupWrites(try String(contentsOfFile: trace, encoding: .utf8), id: id)
        #expect(writes.contains { $0.file.hasSuffix("/tasks") && $0.value == "0" }, "\(writes)")
        #expect(!writes.contains { $0.file.hasSuffix("/cgroup.procs") }, "a pid written to cgroup.procs: \(writes)")
    }
}
