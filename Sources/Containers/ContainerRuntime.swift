import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// How a container ended, and what the kernel counted for it.
public struct ContainerResult: Sendable {
    /// The container PID 1's exit status, or 128+N when signal N ended it.
    public var status: Int32
    public var signal: Int32?
    /// The kernel's OOM killer killed a process in the container's cgroup.
    public var oomKilled: Bool
    public var statistics: CgroupStatistics
    public var limits: CgroupLimits
    public var cgroupVersion: CgroupVersion
    /// CLOCK_MONOTONIC: container process cloned, exec'd (the parent saw the error pipe close), exited.
    public var clonedNanoseconds: UInt64
    public var startedNanoseconds: UInt64
    public var exitedNanoseconds: UInt64
    /// A host signal that made Tandem stop the container.
    public var interruptedBy: Int32?
}

/// Runs containers: everything in the parent is Swift; between clone and exec it is C
/// (`clinux_container_spawn`). Nothing a run creates outlives it: its cgroup(s) in every
/// hierarchy, its mounts (all made inside its own mount namespace, so they vanish with it), its
/// namespaces (they end with its last process), its overlay upper layer and state directory.
public enum ContainerRuntime {
    /// The OCI runtime spec's default capability set (config-linux.md / runc's default spec).
    public static let defaultCapabilities: [(name: String, number: Int)] = [
        ("CAP_CHOWN", 0), ("CAP_DAC_OVERRIDE", 1), ("CAP_FOWNER", 3), ("CAP_FSETID", 4), ("CAP_KILL", 5),
        ("CAP_SETGID", 6), ("CAP_SETUID", 7), ("CAP_SETPCAP", 8), ("CAP_NET_BIND_SERVICE", 10), ("CAP_NET_RAW", 13),
        ("CAP_SYS_CHROOT", 18), ("CAP_MKNOD", 27), ("CAP_AUDIT_WRITE", 29), ("CAP_SETFCAP", 31),
    ]
    /// OCI default masked paths: hidden behind /dev/null or an empty read-only tmpfs.
    public static let maskedPaths = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                     "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                                     "/sys/firmware", "/sys/devices/virtual/powercap"]
    /// OCI default read-only paths.
    public static let readOnlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    /// Host device nodes bind-mounted into the container's /dev (a bind works in a user namespace,
    /// where mknod does not).
    public static let devices = ["null", "zero", "full", "random", "urandom", "tty"]
    /// The links every container's /dev has (runtime-spec config-linux.md "Default Devices" and
    /// runc): (target, link). /dev/ptmx is a link to the container's own devpts instance, never a
    /// bind of a path under the root (a hostile root could point it anywhere).
    public static let deviceSymlinks = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
                                        ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]
    /// Where Tandem's cgroups live in each hierarchy.
    public static let cgroupParent = "tandem"

    /// Creates, starts and waits for the container. `started` is called once its program runs.
    /// `logToStateDirectory` (a detached container's monitor): the container's stdout and stderr
    /// go to `<state>/log`, its stdin is /dev/null.
    /// `statistics: false` reads only what the exit needs (OOM kills), not the figures a report
    /// shows: the end of a run is on the launch path too.
    public static func run(_ spec: ContainerSpec, detached: Bool = false, interactive: Bool = false,
                           logToStateDirectory: Bool = false, statistics collect: Bool = true,
                           started: (ContainerState) -> Void = { _ in }) throws(ContainerError) -> ContainerResult {
        let store = ContainerStore(stateRoot: spec.stateRoot)
        sweep(store)
        let program = try spec.validate()
        guard let layout = CgroupLayout.detect() else {
            throw ContainerError("no cgroup controllers under /sys/fs/cgroup (neither cgroup2 nor v1 memory/cpu/pids mounts)")
        }
        // Stop signals arrive through a signalfd from here on; the child unblocks them before exec.
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }

        let directory = try store.create(spec.id, name: spec.name ?? String(spec.id.prefix(12)))
        var cgroup: (any CgroupManager)?
        var child: pid_t = 0
        func cleanUp() {
            if child > 0 { kill(child, SIGKILL); var status: Int32 = 0; waitpid(child, &status, 0) }
            try? cgroup?.destroy()
            store.remove(spec.id)
        }
        do throws(ContainerError) {
            var state = ContainerState(id: spec.id, name: spec.name ?? String(spec.id.prefix(12)), status: .creating)
            state.command = spec.command
            state.image = spec.rootDirectory
            state.hostname = spec.hostname
            state.detached = detached
            state.monitor = getpid()
            state.monitorStart = ProcessInfoLite.startTime(getpid()) ?? 0
            state.createdNanoseconds = Clock.realtimeNanoseconds()
            state.limits = spec.limits.described
            state.volumes = spec.volumes.map { "\($0.host):\($0.container)" + ($0.readOnly ? ":ro" : "") }
            state.userNamespace = spec.userNamespace
            state.readOnly = spec.readOnly
            state.network = spec.network.rawValue
            try store.save(state)
            if logToStateDirectory {
                let log = open(directory + "/log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
                guard log >= 0 else { throw ContainerError(SystemError("open", directory + "/log").description) }
                dup2(log, 1)
                dup2(log, 2)
                close(log)
            }

            let rootMount: String
            var layers: (lower: String, upper: String, work: String)?
            switch spec.root {
            case .image(let image):
                rootMount = directory + "/root"
                for part in ["root", "upper", "work"] {
                    guard mkdir("\(directory)/\(part)", 0o755) == 0 else { throw ContainerError(SystemError("mkdir", "\(directory)/\(part)").description) }
                }
                var lower = image
                if spec.userNamespace {
                    for part in ["upper", "work"] { chown("\(directory)/\(part)", spec.idMapBase, spec.idMapBase) }
                    lower = try ShiftedImage.path(for: image, base: spec.idMapBase, count: spec.idMapCount, stateRoot: spec.stateRoot)
                }
                layers = (lower, directory + "/upper", directory + "/work")
            case .rootfs(let rootfs):
                rootMount = rootfs
            }

            let manager: any CgroupManager
            do {
                manager = try layout.create(parent: cgroupParent, name: spec.id, extra: layout.version == .v1 ? ["devices"] : [])
                cgroup = manager
                try manager.apply(spec.limits)
            } catch { throw ContainerError(describeLimitError(error, spec.limits)) }
            // Root in the container keeps CAP_MKNOD (Docker's default): the device cgroup is what
            // keeps it from making and opening the host's devices.
            do { try DeviceAccess.apply(DeviceAccess.defaults, to: manager) } catch {
                throw ContainerError("the container's device cgroup: \(error.description)")
            }
            state.cgroups = manager.directories
            state.cgroupProcs = manager.processFiles

            let syncRead: FileDescriptor, execRead: FileDescriptor, errorRead: FileDescriptor
            var syncWrite: FileDescriptor?, execWrite: FileDescriptor?, errorWrite: FileDescriptor?
            do {
                (syncRead, syncWrite) = try FileDescriptor.pipe("sync pipe")
                (execRead, execWrite) = try FileDescriptor.pipe("exec pipe")
                (errorRead, errorWrite) = try FileDescriptor.pipe("error pipe")
            } catch { throw ContainerError(error.description) }

            let cloned = Clock.monotonicNanoseconds()
            let description = ChildDescription(spec: spec, program: program, rootMount: rootMount, layers: layers,
                                               syncFD: syncRead.rawValue, execFD: execRead.rawValue, errorFD: errorWrite!.rawValue)
            child = description.spawn()
            guard child > 0 else { let code = -child; child = 0; throw ContainerError(SystemError("clone", spec.id, errno: code).description) }
            errorWrite = nil

            if spec.userNamespace {
                let map = "0 \(spec.idMapBase) \(spec.idMapCount)\n"
                for file in ["uid_map", "gid_map"] {
                    do { try Files.write("/proc/\(child)/\(file)", Array(map.utf8)) } catch {
                        throw ContainerError("--userns: cannot write \(file): \(error)")
                    }
                }
            }
            // Go: the child builds its root while it is moved into its cgroups; then it may exec.
            var go: UInt8 = 1
            _ = write(syncWrite!.rawValue, &go, 1)
            syncWrite = nil
            do { try manager.add(pid: child) } catch { throw ContainerError(error.description) }
            _ = write(execWrite!.rawValue, &go, 1)
            execWrite = nil
            state.pid = child
            state.pidStart = ProcessInfoLite.startTime(child) ?? 0
            state.status = .running
            try store.save(state)
            // The error pipe closes on exec (or carries the failing step).
            let message = (try? errorRead.readAll(limit: 4096)) ?? []
            if !message.isEmpty {
                throw ContainerError("starting the container failed: " + String(decoding: message, as: UTF8.self))
            }
            let startedAt = Clock.monotonicNanoseconds()
            if detached {
                state.startedNanoseconds = Clock.realtimeNanoseconds()
                try? store.save(state)
            }
            started(state)

            let (waitStatus, interruptedBy) = waitForExit(child, cgroup: manager, interactive: interactive)
            child = 0
            let exitedAt = Clock.monotonicNanoseconds()
            var statistics = CgroupStatistics()
            if collect { statistics = manager.statistics() } else { statistics.oomKills = manager.oomKills() }
            let signal: Int32? = (waitStatus & 0x7f) != 0 ? waitStatus & 0x7f : nil
            let status = WaitStatus.exitCode(waitStatus)
            let result = ContainerResult(status: status, signal: signal, oomKilled: statistics.oomKills > 0, statistics: statistics,
                                         limits: spec.limits, cgroupVersion: layout.version, clonedNanoseconds: cloned,
                                         startedNanoseconds: startedAt, exitedNanoseconds: exitedAt, interruptedBy: interruptedBy)
            try? manager.destroy()
            cgroup = nil
            if detached {
                state.status = .stopped
                state.finishedNanoseconds = Clock.realtimeNanoseconds()
                state.exitStatus = status
                state.oomKilled = result.oomKilled
                state.cgroups = []
                try? store.save(state)
            } else {
                store.remove(spec.id)
            }
            return result
        } catch {
            cleanUp()
            throw error
        }
    }

    static func describeLimitError(_ error: CgroupError, _ limits: CgroupLimits) -> String {
        var text = "cgroup: \(error.description)"
        if text.contains("EINVAL"), limits.memoryBytes != nil || limits.pids != nil || limits.cpuQuotaMicroseconds != nil {
            text += " — the kernel refused a limit"
        }
        return text
    }

    /// Waits for the container's PID 1. SIGTERM/SIGHUP (and SIGINT when not interactive: on a
    /// terminal, Ctrl-C reaches the container's own foreground job) are passed on to it; if it has
    /// not ended 2 s later, everything in its cgroup is killed — a PID 1 without handlers ignores
    /// them, which is why Docker's stop has the same fallback.
    static func waitForExit(_ pid: pid_t, cgroup: any CgroupManager, interactive: Bool) -> (status: Int32, interruptedBy: Int32?) {
        let signals = try? SignalFD([SIGINT, SIGTERM, SIGHUP])
        let pidfd = clinux_pidfd_open(pid)
        var interruptedBy: Int32?
        var deadline: UInt64?
        while true {
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals?.fd.rawValue ?? -1, events: Int16(POLLIN), revents: 0)]
            var timeout: Int32 = pidfd < 0 ? 100 : -1
            if let deadline {
                let now = Clock.monotonicNanoseconds()
                if now >= deadline { cgroup.killAll(); timeout = 100 } else { timeout = Int32((deadline - now) / 1_000_000 + 1) }
            }
            _ = poll(&fds, 2, timeout)
            if fds[1].revents != 0, let signal = signals?.next() {
                if signal == SIGINT && interactive { continue }
                interruptedBy = interruptedBy ?? signal
                kill(pid, signal == SIGINT ? SIGINT : SIGTERM)
                if deadline == nil { deadline = Clock.monotonicNanoseconds() + 2_000_000_000 }
            }
            var status: Int32 = 0
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid {
                if pidfd >= 0 { close(pidfd) }
                return (status, interruptedBy)
            }
        }
    }

    /// Cleans up after containers whose tandem was killed (SIGKILL mid-start or mid-run): their
    /// processes, cgroups and directories. Only entries in Tandem's own store are looked at.
    public static func sweep(_ store: ContainerStore) {
        let now = Int(Clock.realtimeNanoseconds() / 1_000_000_000)
        for entry in store.entries() {
            if let state = entry.state {
                if !state.monitorAlive && state.status != .stopped { reclaim(state, store: store) }
            } else if now - entry.changedSeconds > 60 {
                // A tandem killed between creating its directory and writing its first state
                // leaves a directory without state; one older than a minute is no run in progress.
                reclaim(ContainerState(id: entry.id, name: entry.id, status: .creating), store: store)
            }
        }
    }

    /// Kills whatever is left of a container and removes everything it had: its processes, its
    /// cgroup in every hierarchy (found from the layout too, in case its tandem died before
    /// recording them), its directory.
    public static func reclaim(_ state: ContainerState, store: ContainerStore) {
        var leaves = state.cgroups.filter { $0.hasSuffix("/" + state.id) }
        switch CgroupLayout.detect() {
        case .v2(let root): leaves.append("\(root)/\(cgroupParent)/\(state.id)")
        case .v1(let controllers): leaves += controllers.values.map { "\($0)/\(cgroupParent)/\(state.id)" }
        case nil: break
        }
        leaves = Array(Set(leaves)).filter { Files.kind($0) == .directory }
        CgroupLeftovers.killAll(in: leaves)
        if state.isRunning { kill(state.pid, SIGKILL) }
        // Tandem's parent goes too, while no other container uses it.
        CgroupLeftovers.remove(leaves + leaves.map(Files.directory(of:)))
        store.remove(state.id)
    }
}
