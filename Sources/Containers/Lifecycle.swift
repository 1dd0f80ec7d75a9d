import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// What both front ends (`tandem ctr` and `tandem-runtime`) do to a container after it is made:
/// delete, pause and resume it, exec in it, wait for its monitor. One implementation, so a
/// container made by either can be handled by the other.
package enum Lifecycle {
    /// Removes a stopped container (a created one too, as runc does; a running or paused one only
    /// with `force`, after SIGKILL), once its monitor has recorded the end; poststop hooks last.
    package static func delete(_ record: Record, force: Bool, store: RecordStore, log: RuntimeLog) throws(OCIError) {
        let status = record.currentStatus
        switch status {
        case .running where !force, .paused where !force:
            throw OCIError("cannot delete container \(record.id) that is not stopped: \(status.rawValue) (use --force)")
        case .creating where record.isMonitorAlive && !force:
            throw OCIError("cannot delete container \(record.id): it is being created (use --force)")
        case .paused:
            // A frozen task takes SIGKILL only once thawed (cgroup v1).
            kill(record.pid, SIGKILL)
            try? CgroupFreezer.set(false, directories: record.cgroupProcs.map(Files.directory))
        case .created, .running:
            kill(record.pid, SIGKILL)
        default: break
        }
        // (`run` in the foreground is the monitor itself: nothing to wait for.)
        if record.isMonitorAlive && record.monitor != getpid() {
            if status == .creating { kill(record.monitor, SIGKILL) }
            waitForExit(record.monitor, seconds: 10)
        }
        Cleanup.reclaim(id: record.id, store: store)
        // poststop hooks: the config's at create, kept in the record.
        if !record.poststop.isEmpty {
            var stopped = record
            stopped.status = .stopped
            for failure in HookRunner.runAll(record.poststop, kind: "poststop", state: stopped.ociState(), place: .runtime) {
                log.notice(failure + " (the other poststop hooks ran, and the container is deleted, as the spec says)")
            }
        }
    }

    /// Freezes or thaws every process of the container (the cgroup freezer: v1 freezer.state,
    /// v2 cgroup.freeze) and returns once the kernel reports it done.
    package static func pause(_ record: Record, frozen: Bool) throws(OCIError) {
        let command = frozen ? "pause" : "resume"
        let status = record.currentStatus
        if frozen && status == .paused { throw OCIError("\(command) \(record.id): the container is already paused") }
        if !frozen && status == .running { throw OCIError("\(command) \(record.id): the container is not paused") }
        guard status == (frozen ? .running : .paused) else {
            throw OCIError("\(command) \(record.id): the container is \(status.rawValue), not \(frozen ? "running" : "paused")")
        }
        // The container's own directories only (an absolute cgroupsPath may name shared parents).
        let own = record.cgroupProcs.map(Files.directory)
        guard !own.isEmpty else {
            throw OCIError("\(command) \(record.id): the container has no cgroup to freeze (made rootless, without a delegated cgroup)")
        }
        do { try CgroupFreezer.set(frozen, directories: own) } catch { throw OCIError("\(command) \(record.id): \(error.description)") }
    }

    /// Starts `process` in the running container's namespaces and cgroups (`exec`); returns its
    /// host pid (the caller waits for it) once it has exec'd, or throws the step that failed.
    package static func exec(_ record: Record, config: OCIConfig, process: OCIConfig.Process, consoleFD: Int32 = -1,
                             pidFile: String? = nil) throws(OCIError) -> pid_t {
        var config = config
        config.process = process
        // The program is looked up in the running container's root.
        config.rootPath = "/proc/\(record.pid)/root"
        let launch = try Launch(config: config)
        let seccomp = try config.seccomp.map { profile throws(OCIError) in try CompiledSeccomp.compile(profile) }
        let reader: FileDescriptor
        var writer: FileDescriptor?
        do { (reader, writer) = try FileDescriptor.pipe("exec error pipe") } catch { throw OCIError(error.description) }
        let arena = CStrings()
        var cProcess = launch.cProcess(arena, seccomp: seccomp, consoleFD: consoleFD)
        // A rootless container's namespace may deny setgroups (IDMaps.ownIDs): groups stay then.
        cProcess.keep_groups = Files.readText("/proc/\(record.pid)/setgroups")?.hasPrefix("deny") == true ? 1 : 0
        let joins = CgroupJoin.files(forProcessFiles: record.cgroupProcs)
        let pid = clinux_container_exec(record.pid, arena.constArray(joins), Int32(joins.count),
                                        &cProcess, -1, writer!.rawValue)
        writer = nil
        guard pid > 0 else { throw OCIError("exec \(record.id): " + SystemError("fork", record.id, errno: -pid).description) }
        if let pidFile { try Supervisor.writePidFile(pidFile, pid) }
        let message = (try? reader.readAll(limit: 4096)) ?? []
        if !message.isEmpty {
            var status: Int32 = 0
            waitpid(pid, &status, 0)
            throw OCIError("exec \(record.id) failed: " + String(decoding: message, as: UTF8.self))
        }
        return pid
    }

    /// Waits for a process that is not our child (the monitor) to exit.
    package static func waitForExit(_ pid: pid_t, seconds: Int) {
        let pidfd = clinux_pidfd_open(pid)
        if pidfd >= 0 {
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, Int32(seconds * 1000))
            close(pidfd)
            return
        }
        for _ in 0..<(seconds * 200) where kill(pid, 0) == 0 { usleep(5_000) }
    }
}

/// Removes whatever a container left: processes in its cgroups, the cgroups, its directory.
package enum Cleanup {
    package static func reclaim(id: String, store: RecordStore) {
        let record = try? store.load(id)
        if let record {
            // Only the container's own cgroups: a parent named by cgroupsPath may hold other processes.
            CgroupLeftovers.killAll(in: CgroupLeftovers.leaves(record.cgroups))
            if record.isProcessAlive { kill(record.pid, SIGKILL) }
            CgroupLeftovers.remove(record.cgroups)
        }
        store.remove(id, name: record?.name, unnamed: record != nil && record?.name == nil)
        BridgeNetwork.release(id: id)
    }
}
