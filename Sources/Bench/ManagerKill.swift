import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Seed 004's "if the engine goes down, containers stop", measured: for each container runtime,
/// a container runs `sh -c 'sleep 3; exit 7'`; its manager (the parent of the container's init:
/// Tandem's monitor, crun's or runc's foreground `run`, podman's conmon) gets SIGKILL; then the
/// container is watched (does it go on?) and the runtime asked what became of it (is the exit
/// status still known?). docs/bench.md, "When the manager dies".
public enum ManagerKill {
    public static let expectedStatus = 7
    static let sleepSeconds = 3.0

    /// How one runtime is driven.
    public struct Subject: Sendable {
        public var runtime: String
        /// Starts the container. A foreground start stays running: it is the manager.
        var start: [String]
        var foreground: Bool
        /// Asks the runtime afterwards; `read` turns its output into what it reported and whether
        /// that holds the expected status.
        var status: [String]
        var read: @Sendable (String) -> (reported: String, collected: Bool)
        var cleanup: [[String]]
        /// A directory of its own (bundle, state, logs).
        var work: String
        /// What the manager is, for the report.
        var role: String
        /// The container's name (in `start` and `cleanup`).
        var name: String
        /// Lists the runtime's containers (their names appear in the output): for `sweep`.
        var list: [String]
    }

    /// The container's command: `marker` (its $0) finds its init among the host's processes.
    static func command(_ marker: String) -> [String] {
        ["/bin/sh", "-c", "sleep \(Int(sleepSeconds)); exit \(expectedStatus)", marker]
    }

    /// The subjects for the runtimes asked for that exist here; `work` holds bundles and state.
    public static func subjects(_ runtimes: [String], environment: BenchEnvironment) -> [Subject] {
        guard let rootfs = environment.rootfs else { return [] }
        let work = environment.workDirectory + "/manager-kill"
        try? Files.makeDirectories(work)
        var subjects: [Subject] = []
        for runtime in runtimes {
            let name = "tandem-mk-\(getpid())-" + runtime.split(separator: " ").joined(separator: "-")
            let own = work + "/" + runtime.split(separator: " ").joined(separator: "-")
            try? Files.makeDirectories(own)
            switch runtime {
            case "tandem ctr":
                subjects.append(Subject(
                    runtime: runtime, start: [environment.tandem, "ctr", "run", "-d", "--name", name, "--"] + command(name), foreground: false,
                    status: [environment.tandem, "ctr", "ps"],
                    read: { readCtrPS($0, name: name) },
                    cleanup: [[environment.tandem, "ctr", "rm", "-f", name]], work: own,
                    role: "its monitor (tandem ctr run -d leaves one per container)", name: name, list: [environment.tandem, "ctr", "ps"]))
            case "tandem-runtime", "crun", "runc":
                let binary = runtime == "tandem-runtime" ? Files.directory(of: environment.tandem) + "/tandem-runtime" : Files.which(runtime)
                guard let binary, Files.kind(binary) == .regular else { continue }
                let bundle = own
                let config = OCIConfig.minimal(rootfs: rootfs, args: command(name), hostname: runtime)
                guard (try? Files.write(bundle + "/config.json", Array(config.utf8))) != nil else { continue }
                let root = ["--root", own + "/state"]
                // Tandem's runtime keeps a monitor per container (run --detach); crun and runc have
                // none, so their manager is the foreground `run` that a caller waits on.
                let start = runtime == "tandem-runtime" ? [binary] + root + ["run", "--detach", "--bundle", bundle, name]
                    : [binary] + root + ["run", "--bundle", bundle, name]
                subjects.append(Subject(
                    runtime: runtime, start: start, foreground: runtime != "tandem-runtime", status: [binary] + root + ["state", name],
                    read: readOCIState,
                    cleanup: [[binary] + root + ["delete", "--force", name]], work: own,
                    role: runtime == "tandem-runtime" ? "its monitor (one per container)" : "\(runtime) run in the foreground, the caller's child",
                    name: name, list: [binary] + root + ["list", "--quiet"]))
            case "podman":
                guard let podman = Files.which("podman") else { continue }
                // The rootfs gets an overlay (":O") so podman's own files never land in the image.
                let global = [podman, "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
                subjects.append(Subject(
                    runtime: runtime,
                    start: global + ["run", "-d", "--name", name, "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--rootfs", rootfs + ":O"] + command(name),
                    foreground: false, status: global + ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name],
                    read: readPodmanInspect,
                    cleanup: [global + ["rm", "--force", name]], work: own, role: "conmon, podman's per-container monitor",
                    name: name, list: global + ["ps", "--all", "--format", "{{.Names}}"]))
            default: continue
            }
        }
        return subjects
    }

    /// What a bench killed during this measurement left (its containers are named
    /// tandem-mk-<bench pid>-<runtime>): removed by the next bench before it measures.
    public static func sweep(_ subjects: [Subject]) {
        func stale(_ name: Substring) -> Bool {
            guard name.hasPrefix("tandem-mk-"), let pid = pid_t(name.dropFirst("tandem-mk-".count).prefix { $0 != "-" }) else { return false }
            return pid != getpid() && !ProcessInfoLite.isAlive(pid)
        }
        for subject in subjects {
            guard let output = try? Subprocess.run(subject.list[0], Array(subject.list.dropFirst()), mergeStandardError: false).output else { continue }
            let names = Set(output.split(whereSeparator: { $0 == " " || $0 == "\n" }).filter(stale).map(String.init))
            for name in names {
                for argv in subject.cleanup {
                    let own = argv.map { $0 == subject.name ? name : $0 }
                    Subprocess.runQuietly(own[0], Array(own.dropFirst()))
                }
                removeCgroups(named: name)
            }
        }
        // crun's and runc's state lived in that bench's temp directory; their cgroups did not.
        for hierarchy in cgroupHierarchies() {
            for name in Files.list(hierarchy) where stale(Substring(name)) { removeCgroups(named: name) }
        }
        sweepPodmanOrphans()
    }

    /// runc's states of podman containers whose bundle is gone. With its conmon killed, podman
    /// removes the container (`rm --force`) but never runs runc's delete: runc's state stays in
    /// /run/runc, one per measurement (56 had piled up here over a day of benches and tests).
    /// Only a libpod container whose bundle directory no longer exists is taken: it cannot run again.
    public static func sweepPodmanOrphans(root: String = "/run/runc") {
        guard let runc = Files.which("runc") else { return }
        for id in Files.list(root) {
            guard let text = Files.readText(root + "/" + id + "/state.json"), let state = try? JSON.parse(text),
                  case .array(let labels)? = state["config"]?["labels"] else { continue }
            let strings = labels.compactMap { if case .string(let label) = $0 { label } else { nil } }
            guard strings.contains("io.container.manager=libpod"),
                  let bundle = strings.first(where: { $0.hasPrefix("bundle=") })?.dropFirst("bundle=".count),
                  Files.kind(String(bundle)) == .missing else { continue }
            Subprocess.runQuietly(runc, ["--root", root, "delete", "--force", id])
        }
    }

    /// Runs one subject: start, find the init, kill its parent, watch, ask, clean up.
    public static func measure(_ subject: Subject) -> ManagerKillResult {
        var result = ManagerKillResult(runtime: subject.runtime, manager: "—", measured: false, containerSurvived: nil, exitStatusCollected: nil,
                                       expectedStatus: expectedStatus, reported: "—", note: "")
        let marker = subject.name
        defer {
            for argv in subject.cleanup { Subprocess.runQuietly(argv[0], Array(argv.dropFirst())) }
            for pid in containerInits(marker) { kill(pid, SIGKILL) }
            removeCgroups(named: marker)
            if subject.runtime == "podman" { sweepPodmanOrphans() }
        }
        var foreground: (pid: pid_t, reader: FileDescriptor)?
        defer {
            if let foreground {
                kill(foreground.pid, SIGKILL)
                var status: Int32 = 0
                _ = waitpid(foreground.pid, &status, 0)
            }
        }
        do {
            if subject.foreground {
                foreground = try Subprocess.spawnPiped(subject.start[0], Array(subject.start.dropFirst()), mergeStandardError: true, defaultSignals: true)
            } else {
                // Into a file, not a pipe: the detached container may keep its caller's stdout.
                let log = subject.work + "/start.log"
                let status = try Subprocess.run(subject.start[0], Array(subject.start.dropFirst()), outputFile: log)
                guard status == 0 else {
                    result.note = "the container did not start (status \(status)): \((Files.readText(log) ?? "").prefix(200))"
                    return result
                }
            }
        } catch {
            result.note = "cannot start: \(error)"
            return result
        }
        guard let initPID = waitFor(seconds: 10, { containerInits(marker).first }), let start = ProcessInfoLite.startTime(initPID),
              let manager = ProcessInfoLite.parent(initPID), manager > 1, manager != getpid() else {
            result.note = "the container's init did not appear within 10 s"
            return result
        }
        let program = ProcessInfoLite.commandLine(manager).split(separator: " ").first.map { String($0.split(separator: "/").last ?? $0) } ?? "?"
        result.manager = "\(program): \(subject.role)"
        kill(manager, SIGKILL)
        usleep(500_000)
        let alive = { ProcessInfoLite.startTime(initPID) == start }
        result.containerSurvived = alive()
        // It exits by itself sleepSeconds after it started; give it that and a margin.
        if waitFor(seconds: sleepSeconds + 5, { alive() ? nil : true }) == nil {
            result.note = "the container was still running \(Int(sleepSeconds + 5)) s later; killed"
            kill(initPID, SIGKILL)
        }
        usleep(300_000)  // let a runtime that survived its manager notice the exit
        guard let answer = try? Subprocess.run(subject.status[0], Array(subject.status.dropFirst()), mergeStandardError: false) else {
            result.note = "cannot run \(subject.status[0])"
            return result
        }
        let (reported, collected) = subject.read(answer.output)
        result.reported = reported
        result.exitStatusCollected = collected
        result.measured = true
        return result
    }

    /// Host pids of processes that are PID 1 of their own PID namespace and carry `marker`.
    static func containerInits(_ marker: String) -> [pid_t] {
        guard !marker.isEmpty else { return [] }
        return ProcessInfoLite.all().filter { pid in
            ProcessInfoLite.namespacePID(pid) == 1 && pid != 1 && ProcessInfoLite.commandLine(pid).hasSuffix(" " + marker)
        }
    }

    /// A runtime that lost its state with its manager cannot delete the container's cgroups (crun
    /// 1.8 after its foreground `run` is killed): remove the ones named after the container, in
    /// every hierarchy, once its processes are gone. The name is this measurement's own.
    static func removeCgroups(named name: String) {
        guard !name.isEmpty else { return }
        for hierarchy in cgroupHierarchies() where Files.kind(hierarchy + "/" + name) == .directory {
            for line in (Files.readText(hierarchy + "/" + name + "/cgroup.procs") ?? "").split(separator: "\n") {
                if let pid = pid_t(line) { kill(pid, SIGKILL) }
            }
            for _ in 0..<50 where rmdir(hierarchy + "/" + name) != 0 && errno == EBUSY { usleep(20_000) }
        }
    }

    /// /sys/fs/cgroup and the directories in it (v1 hierarchies, the hybrid's unified).
    static func cgroupHierarchies() -> [String] {
        ["/sys/fs/cgroup"] + Files.list("/sys/fs/cgroup").map { "/sys/fs/cgroup/" + $0 }.filter { Files.kind($0) == .directory }
    }

    /// Polls `probe` every 20 ms for up to `seconds`.
    static func waitFor<T>(seconds: Double, _ probe: () -> T?) -> T? {
        let deadline = Clock.deadline(after: seconds)
        repeat {
            if let value = probe() { return value }
            usleep(20_000)
        } while Clock.monotonicNanoseconds() < deadline
        return nil
    }

    /// `tandem ctr ps`: the STATUS column of the container's row ("exited (7)", "dead (…)").
    static func readCtrPS(_ output: String, name: String) -> (reported: String, collected: Bool) {
        // CONTAINER ID  NAME  STATUS  PID  COMMAND, columns two or more spaces apart.
        guard let line = output.split(separator: "\n").first(where: { columns(String($0)).dropFirst().first == name }) else { return ("not listed", false) }
        let status = columns(String(line)).dropFirst(2).first ?? "?"
        return (status, status == "exited (\(expectedStatus))")
    }

    /// An OCI runtime's `state`: its status, and `exitStatus` where the runtime keeps one (runc and
    /// crun never do: the foreground `run` returns it, and that is what was killed).
    static func readOCIState(_ output: String) -> (reported: String, collected: Bool) {
        let status = jsonString("status", in: output) ?? "no state"
        let exit = jsonNumber("exitStatus", in: output)
        return (exit.map { "\(status), exitStatus \($0)" } ?? "\(status), no exit status", exit == expectedStatus)
    }

    /// `podman inspect --format '{{.State.Status}} {{.State.ExitCode}}'`.
    static func readPodmanInspect(_ output: String) -> (reported: String, collected: Bool) {
        let words = output.split(whereSeparator: { $0 == " " || $0 == "\n" })
        let reported = words.count == 2 ? "\(words[0]), exit code \(words[1])" : words.joined(separator: " ")
        return (reported, words.count == 2 && words[0] == "exited" && words[1] == "\(expectedStatus)")
    }

    static func columns(_ line: String) -> [String] {
        line.components(separatedBy: "  ").map { $0.split(separator: " ").joined(separator: " ") }.filter { !$0.isEmpty }
    }

    /// A top-level string or number member of a small JSON object (a runtime's state).
    static func jsonString(_ key: String, in text: String) -> String? {
        guard let value = JSONField.value(key, of: text), case .string(let string) = value else { return nil }
        return string
    }

    static func jsonNumber(_ key: String, in text: String) -> Int? {
        guard let value = JSONField.value(key, of: text), case .number(let number) = value else { return nil }
        return Int(number)
    }
}
