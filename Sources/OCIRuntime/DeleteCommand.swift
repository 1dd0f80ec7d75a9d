import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `delete [--force] ID`: removes a stopped container (a created one too, as runc does; a
/// running one only with --force, after SIGKILL). poststop hooks run last.
enum DeleteCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("force", "f")], command: "delete")
        let id = try arguments.id("delete")
        try arguments.expectingNoMore(than: 1, "delete")
        let force = arguments.flag("force")
        let store = options.store
        let record: Record
        do { record = try store.load(id) } catch {
            if force && Files.kind(store.directory(id)) == .missing { return 0 }  // runc: --force on a missing container is fine
            throw error
        }
        try delete(record, force: force, store: store, log: options.log)
        return 0
    }

    static func delete(_ record: Record, force: Bool, store: RecordStore, log: RuntimeLog) throws(OCIError) {
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
        // poststop hooks: from the bundle's config.json, if it is still there.
        if let config = try? OCIConfig.load(bundle: record.bundle), !config.hooks.poststop.isEmpty {
            var stopped = record
            stopped.status = .stopped
            do { try HookRunner.run(config.hooks.poststop, kind: "poststop", state: stopped.ociState(), place: .runtime) } catch {
                log.warning(error.description)
            }
        }
    }

    /// Waits for a process that is not our child (the monitor) to exit.
    static func waitForExit(_ pid: pid_t, seconds: Int) {
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
