import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// What `tandem ctr ps/top/exec/stop/kill/rm/pause/resume` do, on the engine's records and
/// through its `Lifecycle`: the containers `tandem-runtime --root` makes in the same store are
/// listed and handled the same way.
public struct ContainerControl: Sendable {
    public let store: RecordStore

    public init(stateRoot: String = ContainerSpec.defaultStateRoot) { store = RecordStore(root: stateRoot) }

    /// Every container, oldest first (one that is being removed meanwhile is skipped).
    public func all() -> [Record] {
        store.records().sorted { $0.createdNanoseconds < $1.createdNanoseconds }
    }

    public func find(_ reference: String) throws(ContainerError) -> Record {
        do { return try store.find(reference) } catch { throw ContainerError(error.description) }
    }

    /// A container's status as `ps` shows it: a `tandem ctr` container whose tandem is gone is "dead".
    public static func status(_ record: Record) -> String {
        let current = record.currentStatus
        switch current {
        case .stopped: return "exited (\(record.exitStatus.map(String.init) ?? "?"))" + (record.oomKilled ? " oom-killed" : "")
        case .running, .paused:
            return record.name != nil && !record.isMonitorAlive ? "dead (its tandem was killed; rm cleans up)" : current.rawValue
        default: return current.rawValue
        }
    }

    /// One process of `top`: host pid, the pid inside, uid and command line.
    public struct Process: Sendable {
        public var hostPID: pid_t
        public var containerPID: pid_t?
        public var uid: UInt32?
        public var command: String
    }

    func running(_ reference: String) throws(ContainerError) -> Record {
        let record = try find(reference)
        guard [.running, .paused].contains(record.currentStatus) else { throw ContainerError("container \(record.displayName) is not running") }
        return record
    }

    /// Every process in the container's cgroup (`docker top`).
    public func top(_ reference: String) throws(ContainerError) -> (Record, [Process]) {
        let record = try running(reference)
        let processes = record.processes().map {
            Process(hostPID: $0, containerPID: ProcessInfoLite.namespacePID($0), uid: ProcessInfoLite.uid($0), command: ProcessInfoLite.commandLine($0))
        }
        return (record, processes)
    }

    /// Runs `command` inside a running container (its namespaces and cgroups) as its own process
    /// runs (config.json's user, capabilities, limits); returns its exit status.
    public func exec(_ reference: String, command: [String], environment: [String]) throws(ContainerError) -> Int32 {
        let record = try running(reference)
        // A process joining a frozen cgroup freezes too: exec would hang (docker refuses the same way).
        guard record.currentStatus != .paused else {
            throw ContainerError("container \(record.displayName) is paused: resume it first (tandem ctr resume \(record.displayName))")
        }
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }
        do throws(OCIError) {
            let config = try OCIConfig.load(bundle: record.bundle)
            guard var process = config.process else { throw OCIError("container \(record.displayName): its config.json has no process") }
            process.args = command
            process.env = environment
            process.terminal = false
            let pid = try Lifecycle.exec(record, config: config, process: process)
            var status: Int32 = 0
            _ = try? retryingOnInterrupt("waitpid", "exec") { waitpid(pid, &status, 0) }
            return WaitStatus.exitCode(status)
        } catch {
            throw ContainerError(error.description.replacingFirst("exec \(record.id)", with: "exec in \(record.displayName)"))
        }
    }

    /// Sends `signal` to the container's PID 1 (SIGKILL reaches it; others only if it handles them).
    public func kill(_ reference: String, signal: Int32) throws(ContainerError) {
        let record = try running(reference)
        guard Glibc.kill(record.pid, signal) == 0 else { throw ContainerError(SystemError("kill", "\(record.pid)").description) }
    }

    /// SIGTERM (or its image's StopSignal), then after `grace` seconds SIGKILL to everything in
    /// its cgroups; waits until its monitor has recorded the exit.
    public func stop(_ reference: String, grace: Double) throws(ContainerError) -> Record {
        var record = try find(reference)
        guard [.running, .paused, .created].contains(record.currentStatus) else { return record }
        if record.currentStatus == .paused { try? CgroupFreezer.set(false, directories: record.cgroupProcs.map(Files.directory)) }
        Glibc.kill(record.pid, record.annotation(ContainerSpec.Annotation.stopSignal).flatMap(Signals.number) ?? SIGTERM)
        let deadline = Clock.deadline(after: grace)
        while record.isProcessAlive, Clock.monotonicNanoseconds() < deadline { usleep(10_000) }
        if record.isProcessAlive { for pid in record.processes() { Glibc.kill(pid, SIGKILL) } }
        // The monitor records the exit and removes the cgroups; give it a moment.
        for _ in 0..<500 {
            guard let current = try? store.load(record.id) else { break }
            record = current
            if record.status == .stopped || !record.isMonitorAlive { break }
            usleep(10_000)
        }
        return record
    }

    /// Removes a stopped (or, with `force`, any) container and everything it had.
    public func remove(_ reference: String, force: Bool) throws(ContainerError) -> Record {
        let record = try find(reference)
        let live = [.running, .paused, .created].contains(record.currentStatus) && (record.isMonitorAlive || record.name == nil)
        if live, !force { throw ContainerError("container \(record.displayName) is running: stop it first, or rm --force") }
        if live { _ = try stop(reference, grace: 0) }
        let current = (try? store.load(record.id)) ?? record
        do { try Lifecycle.delete(current, force: true, store: store, log: RuntimeLog(path: nil, format: .text, debug: false, label: "tandem")) } catch {
            throw ContainerError(error.description)
        }
        return record
    }

    /// Freezes or thaws every process of the container (cgroup freezer), and returns once the
    /// kernel reports it done.
    public func pause(_ reference: String, frozen: Bool) throws(ContainerError) {
        let record = try running(reference)
        do { try Lifecycle.pause(record, frozen: frozen) } catch {
            throw ContainerError(error.description.replacingFirst(record.id, with: record.displayName))
        }
    }
}

extension Record {
    /// The `tandem ctr` name, or the id's first 12 digits (a `tandem-runtime` container's id is its name).
    public var displayName: String { name ?? String(id.prefix(12)) }

    /// One of the annotations (read from annotations.json, written once at create).
    public func annotation(_ key: String) -> String? {
        guard case .object(let members) = ociState()["annotations"] ?? .null else { return nil }
        return members.first { $0.0 == key }.flatMap { if case .string(let value) = $0.1 { value } else { nil } }
    }
}
