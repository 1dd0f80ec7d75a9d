import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// What `tandem ctr ps/top/exec/stop/kill/rm/pause/resume` do to containers in the store.
public struct ContainerControl: Sendable {
    public let store: ContainerStore

    public init(stateRoot: String = ContainerSpec.defaultStateRoot) { store = ContainerStore(stateRoot: stateRoot) }

    /// A container's status as `ps` shows it: a running entry whose tandem is gone is "dead".
    public static func status(_ state: ContainerState) -> String {
        switch state.status {
        case .stopped: return "exited (\(state.exitStatus.map(String.init) ?? "?"))" + (state.oomKilled ? " oom-killed" : "")
        case .running where !state.monitorAlive: return "dead (its tandem was killed; rm cleans up)"
        case .running where state.isRunning: return CgroupFreezer.isFrozen(state.cgroups) == true ? "paused" : "running"
        case .running, .creating: return state.status.rawValue
        }
    }

    /// One process of `top`: host pid, the pid inside, uid and command line.
    public struct Process: Sendable {
        public var hostPID: pid_t
        public var containerPID: pid_t?
        public var uid: UInt32?
        public var command: String
    }

    /// Every process in the container's cgroup (`docker top`).
    public func top(_ reference: String) throws(ContainerError) -> (ContainerState, [Process]) {
        let state = try store.find(reference)
        guard state.status == .running, state.isRunning else { throw ContainerError("container \(state.name) is not running") }
        var pids = Set<pid_t>()
        for file in state.cgroupProcs {
            for line in (Files.readText(file) ?? "").split(separator: "\n") { if let pid = pid_t(line) { pids.insert(pid) } }
        }
        let processes = pids.sorted().map {
            Process(hostPID: $0, containerPID: ProcessInfoLite.namespacePID($0), uid: ProcessInfoLite.uid($0),
                    command: ProcessInfoLite.commandLine($0))
        }
        return (state, processes)
    }

    /// Runs `command` inside a running container (its namespaces and cgroups); returns its exit status.
    public func exec(_ reference: String, command: [String], environment: [String]) throws(ContainerError) -> Int32 {
        let state = try store.find(reference)
        guard state.status == .running, state.isRunning else { throw ContainerError("container \(state.name) is not running") }
        // A process joining a frozen cgroup freezes too: exec would hang (docker refuses the same way).
        guard CgroupFreezer.isFrozen(state.cgroups) != true else {
            throw ContainerError("container \(state.name) is paused: resume it first (tandem ctr resume \(state.name))")
        }
        guard let program = command.first else { throw ContainerError("no command to run") }
        let root = "/proc/\(state.pid)/root"
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? ContainerSpec.defaultPath
        guard let resolved = ContainerSpec.resolve(program, in: root, path: path) else {
            throw ContainerError("container \(state.name) has no executable \(program)")
        }
        let reader: FileDescriptor
        var writer: FileDescriptor?
        do { (reader, writer) = try FileDescriptor.pipe("exec error pipe") } catch { throw ContainerError(error.description) }

        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }
        let strings = CStrings()
        let capabilities = ContainerRuntime.defaultCapabilities.reduce(UInt64(0)) { $0 | (1 << UInt64($1.number)) }
        var process = ChildDescription.process(path: strings.string(resolved), argv: strings.array(command),
                                               envp: strings.array(environment), cwd: strings.string("/"), capabilities: capabilities)
        let pid = clinux_container_exec(state.pid, strings.constArray(state.cgroupProcs), Int32(state.cgroupProcs.count),
                                        &process, -1, writer!.rawValue)
        writer = nil
        guard pid > 0 else { throw ContainerError(SystemError("fork", state.name, errno: -pid).description) }
        let message = (try? reader.readAll(limit: 4096)) ?? []
        var status: Int32 = 0
        _ = try? retryingOnInterrupt("waitpid", "exec") { waitpid(pid, &status, 0) }
        if !message.isEmpty { throw ContainerError("exec in \(state.name) failed: " + String(decoding: message, as: UTF8.self)) }
        return WaitStatus.exitCode(status)
    }

    /// Sends `signal` to the container's PID 1 (SIGKILL reaches it; others only if it handles them).
    public func kill(_ reference: String, signal: Int32) throws(ContainerError) {
        let state = try store.find(reference)
        guard state.status == .running, state.isRunning else { throw ContainerError("container \(state.name) is not running") }
        guard Glibc.kill(state.pid, signal) == 0 else { throw ContainerError(SystemError("kill", "\(state.pid)").description) }
    }

    /// SIGTERM, then after `grace` seconds SIGKILL to everything in its cgroups; waits until its
    /// monitor has recorded the exit.
    public func stop(_ reference: String, grace: Double) throws(ContainerError) -> ContainerState {
        var state = try store.find(reference)
        guard state.status == .running else { return state }
        if state.isRunning {
            Glibc.kill(state.pid, SIGTERM)
            let deadline = Clock.monotonicNanoseconds() + UInt64(max(0, grace) * 1e9)
            while state.isRunning, Clock.monotonicNanoseconds() < deadline { usleep(10_000) }
            if state.isRunning { killCgroups(state) }
        }
        // The monitor records the exit and removes the cgroups; give it a moment.
        for _ in 0..<500 {
            guard let current = store.load(state.id) else { break }
            state = current
            if state.status == .stopped || !state.monitorAlive { break }
            usleep(10_000)
        }
        return state
    }

    func killCgroups(_ state: ContainerState) {
        for file in state.cgroupProcs {
            for line in (Files.readText(file) ?? "").split(separator: "\n") { if let pid = pid_t(line) { Glibc.kill(pid, SIGKILL) } }
        }
    }

    /// Removes a stopped (or, with `force`, any) container and everything it had.
    public func remove(_ reference: String, force: Bool) throws(ContainerError) -> ContainerState {
        let state = try store.find(reference)
        if state.status == .running, state.isRunning, state.monitorAlive, !force {
            throw ContainerError("container \(state.name) is running: stop it first, or rm --force")
        }
        if state.status == .running, state.isRunning, force { _ = try stop(reference, grace: 0) }
        ContainerRuntime.reclaim(store.load(state.id) ?? state, store: store)
        return state
    }

    /// Freezes or thaws every process of the container (cgroup freezer), and returns once the
    /// kernel reports it done.
    public func pause(_ reference: String, frozen: Bool) throws(ContainerError) {
        let state = try store.find(reference)
        guard state.status == .running, state.isRunning else { throw ContainerError("container \(state.name) is not running") }
        let paused = CgroupFreezer.isFrozen(state.cgroups) == true
        if frozen && paused { throw ContainerError("container \(state.name) is already paused") }
        if !frozen && !paused { throw ContainerError("container \(state.name) is not paused") }
        do { try CgroupFreezer.set(frozen, directories: state.cgroups.filter { $0.hasSuffix("/" + state.id) }) } catch {
            throw ContainerError("container \(state.name): \(error.description)")
        }
    }
}

