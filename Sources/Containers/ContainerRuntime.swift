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
    /// What it wrote to its own layer, in bytes (measured when statistics are collected).
    public var writableLayerBytes: UInt64?
}

/// `tandem ctr run` on the engine: the spec becomes a config.json (`ContainerSpec.ociConfig`),
/// written into the container's directory (its bundle), and the same `Supervisor` that serves
/// `tandem-runtime` makes, starts and ends the container, in the same store. Nothing a run
/// creates outlives it: its cgroup(s), its mounts (made inside its own mount namespace), its
/// namespaces, its overlay upper layer and its directory (a detached one's stays until `rm`).
public enum ContainerRuntime {
    /// Where Tandem's cgroups live in each hierarchy (cgroupsPath /tandem/ID).
    public static let cgroupParent = "tandem"

    /// Creates, starts and waits for the container. `started` is called once its program runs.
    /// `logToStateDirectory` (a detached container's monitor): the container's stdout and stderr
    /// go to `<state>/log`, its stdin is /dev/null.
    /// `statistics: false` reads only what the exit needs (OOM kills), not the figures a report
    /// shows: the end of a run is on the launch path too.
    public static func run(_ spec: ContainerSpec, detached: Bool = false, interactive: Bool = false,
                           logToStateDirectory: Bool = false, statistics collect: Bool = true,
                           started: (Record) -> Void = { _ in }) throws(ContainerError) -> ContainerResult {
        let store = RecordStore(root: spec.stateRoot)
        sweep(store)
        let program = try spec.validate()
        // Stop signals arrive through a signalfd from here on; the child unblocks them before exec.
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }

        // A name given is claimed (unique in the store); without one the container goes by its
        // id's first 12 digits, which a lookup by id prefix finds anyway.
        let name = spec.name ?? String(spec.id.prefix(12))
        let directory: String
        do throws(OCIError) {
            directory = try store.create(spec.id)
            if let given = spec.name {
                do throws(OCIError) { try store.claim(name: given, for: spec.id) } catch { store.remove(spec.id, unnamed: true); throw error }
            }
        } catch { throw ContainerError(error.description) }
        var supervisor: Supervisor?
        do throws(ContainerError) {
            if logToStateDirectory {
                let log = open(directory + "/log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
                guard log >= 0 else { throw ContainerError(SystemError("open", directory + "/log").description) }
                dup2(log, 1)
                dup2(log, 2)
                close(log)
            }
            var options = Supervisor.Options()
            options.program = program
            options.loopbackUp = spec.network != .none
            if spec.network == .bridge { options.bridge = try BridgeNetwork.lease(for: spec.id, stateDirectory: directory, ports: spec.ports) }
            let rootPath: String
            switch spec.root {
            case .image(let image):
                rootPath = directory + "/root"
                guard mkdir(rootPath, 0o755) == 0 else { throw ContainerError(SystemError("mkdir", rootPath).description) }
                if spec.userNamespace {
                    // The writable layer on the host, owned by the container's root: a tmpfs
                    // keeps overlay's user.* xattrs only from Linux 6.6 on.
                    try makeUpperLayer(directory, owner: spec.idMapBase)
                    let lower = try ShiftedImage.path(for: image, base: spec.idMapBase, count: spec.idMapCount, stateRoot: spec.stateRoot)
                    options.overlayUserXattr = true
                    options.layers = (lower, directory + "/upper", directory + "/work")
                } else if ContainerSpec.rootless {
                    // The lower layer is the user's own copy of the image (the image's owner, host
                    // root, is unmapped: overlay could not copy its files up to write them), mounted
                    // in the container's user namespace: overlay keeps its xattrs in user.* (Linux
                    // 5.11+), and the scratch tmpfs takes them (6.6+).
                    let lower = try ShiftedImage.path(for: image, base: geteuid(), gidBase: getegid(), count: 1, stateRoot: spec.stateRoot)
                    options.overlayUserXattr = true
                    options.layers = (lower, nil, nil)
                } else {
                    // The writable layer is a scratch tmpfs in the container's mount namespace
                    // (as /run/tandem, where it lived before, is a tmpfs on most hosts): nothing
                    // to make or remove on the host, and what it writes is charged to its cgroup.
                    options.layers = (image, nil, nil)
                }
            case .layers(let layers):
                // An image from the store: its layers under a scratch tmpfs (as for .image).
                rootPath = directory + "/root"
                guard mkdir(rootPath, 0o755) == 0 else { throw ContainerError(SystemError("mkdir", rootPath).description) }
                if spec.userNamespace {
                    // The layers belong to host root, which the namespace does not map: each is
                    // attached idmapped (host root's files as the container's root's, no copy),
                    // and the writable layer is on the host, owned by the container's root, as
                    // for --userns from the guest image.
                    try makeUpperLayer(directory, owner: spec.idMapBase)
                    options.idmappedLayers = layers
                    options.overlayUserXattr = true
                    options.layers = ("", directory + "/upper", directory + "/work")
                } else {
                    // Rootless (a store of the user's own, its ranges mapped): overlay in the
                    // container's user namespace keeps its xattrs in user.* (the scratch tmpfs
                    // takes them from Linux 6.6 on).
                    options.overlayUserXattr = ContainerSpec.rootless
                    options.layers = (layers.joined(separator: ":"), nil, nil)
                }
            case .rootfs(let rootfs):
                // The engine takes the root's canonical path only (what is checked is what is used).
                var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
                guard let canonical = realpath(rootfs, &buffer) else { throw ContainerError(SystemError("realpath", "--rootfs \(rootfs)").description) }
                rootPath = String(cString: canonical)
            }
            let json = spec.ociConfig(rootPath: rootPath)
            // TANDEM_DEBUG=1: the engine's steps with their times on stderr (tandem-runtime --debug).
            let log = RuntimeLog(path: nil, format: .text, debug: getenv("TANDEM_DEBUG") != nil, label: "tandem")
            do throws(OCIError) {
                let config = try OCIConfig.read(json, bundle: directory)
                let made = try Supervisor(store: store, id: spec.id, config: config, log: log, options: options)
                made.record.name = name
                made.record.ephemeral = !detached
                supervisor = made
                try made.create(consoleSocket: nil, noPivot: false, pidFile: nil, startsNext: true)
            } catch {
                supervisor = nil  // create undid what it made
                throw ContainerError(describe(error, spec.limits))
            }
            let running = supervisor!
            let cloned = running.clonedNanoseconds
            // The bundle, for `exec`, `inspect` and `tandem-runtime --root`: written while the
            // container's process execs (nothing reads it before the container runs).
            do { try Files.write(directory + "/config.json", Array(json.serialized().utf8), mode: 0o600) } catch {
                throw ContainerError(error.description)
            }
            running.mark("bundle written")
            do { try running.start() } catch { throw ContainerError(error.description) }
            running.mark("running (exec'd)")
            let startedAt = Clock.monotonicNanoseconds()
            started(running.record)

            let (waitStatus, interruptedBy) = waitForExit(running.child, cgroup: running.cgroup, interactive: interactive)
            let exitedAt = Clock.monotonicNanoseconds()
            running.mark("exited")
            var statistics = CgroupStatistics()
            if let cgroup = running.cgroup {
                if collect { statistics = cgroup.statistics() } else { statistics.oomKills = cgroup.oomKills() }
            }
            let written = collect ? running.writableLayerBytes() : nil
            let version = running.cgroup?.version ?? .v2
            let signal: Int32? = (waitStatus & 0x7f) != 0 ? waitStatus & 0x7f : nil
            let status = running.finish(waitStatus: waitStatus, oomKilled: statistics.oomKills > 0, keepRecord: detached)
                ?? WaitStatus.exitCode(waitStatus)
            running.mark("cgroups removed")
            supervisor = nil
            if !detached { store.remove(spec.id, name: spec.name, unnamed: spec.name == nil) }
            if spec.network == .bridge { BridgeNetwork.release(id: spec.id) }
            running.mark("state removed")
            return ContainerResult(status: status, signal: signal, oomKilled: statistics.oomKills > 0, statistics: statistics,
                                   limits: spec.limits, cgroupVersion: version, clonedNanoseconds: cloned,
                                   startedNanoseconds: startedAt, exitedNanoseconds: exitedAt, interruptedBy: interruptedBy,
                                   writableLayerBytes: written)
        } catch {
            supervisor?.destroy()
            store.remove(spec.id, name: spec.name, unnamed: spec.name == nil)
            if spec.network == .bridge { BridgeNetwork.release(id: spec.id) }
            throw error
        }
    }

    /// DIRECTORY/upper and /work for a user-namespaced container's overlay, owned by the host id
    /// its root maps to (a tmpfs keeps overlay's user.* xattrs only from Linux 6.6 on).
    static func makeUpperLayer(_ directory: String, owner: UInt32) throws(ContainerError) {
        for part in ["upper", "work"] {
            guard mkdir("\(directory)/\(part)", 0o755) == 0 else { throw ContainerError(SystemError("mkdir", "\(directory)/\(part)").description) }
            chown("\(directory)/\(part)", owner, owner)
        }
    }

    /// The engine's error, in `tandem ctr`'s words where they differ: a config field the user
    /// set through an option is named by that option.
    static func describe(_ error: OCIError, _ limits: CgroupLimits) -> String {
        let text = error.description
        for (field, option) in [("linux.resources.memory.limit", "--memory"), ("linux.resources.memory.swap", "--memory-swap"),
                                ("linux.resources.cpu", "--cpus"), ("linux.resources.pids", "--pids")] where text.contains("config.json: " + field) {
            return text.replacingFirst("config.json: " + field, with: option + " (" + field + ")")
        }
        return text
    }

    /// Waits for the container's PID 1. SIGTERM/SIGHUP (and SIGINT when not interactive: on a
    /// terminal, Ctrl-C reaches the container's own foreground job) are passed on to it; if it has
    /// not ended 2 s later, everything in its cgroup is killed — a PID 1 without handlers ignores
    /// them, which is why Docker's stop has the same fallback.
    static func waitForExit(_ pid: pid_t, cgroup: (any CgroupManager)?, interactive: Bool) -> (status: Int32, interruptedBy: Int32?) {
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
                if now >= deadline { cgroup?.killAll(); timeout = 100 } else { timeout = Int32((deadline - now) / 1_000_000 + 1) }
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

    /// Cleans up after `tandem ctr` containers whose tandem was killed (SIGKILL mid-start or
    /// mid-run): their processes, cgroups and directories. `tandem-runtime`'s containers are
    /// left to `delete`, as runc's are (they have no name: only ctr's do).
    public static func sweep(_ store: RecordStore) {
        for id in store.ids() {
            if Files.kind(store.directory(id) + "/state.json") == .missing {
                // Killed between making its directory and writing its first state: nobody holds
                // the directory any more (its creator and monitor hold it while they live). Only
                // a name `tandem ctr` gives (64 hex digits) is taken for one: --state-root may
                // hold more.
                guard id.utf8.count == 64, id.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }),
                      let taken = store.takeAbandoned(id) else { continue }
                Cleanup.reclaim(id: id, store: store)
                close(taken)
                continue
            }
            guard let record = try? store.load(id), record.name != nil, !record.isMonitorAlive, record.status != .stopped else { continue }
            Cleanup.reclaim(id: id, store: store)
        }
    }
}

extension String {
    /// The first occurrence of `target` replaced (without Foundation: the launch path stays lean).
    func replacingFirst(_ target: String, with replacement: String) -> String {
        let haystack = Array(utf8), needle = Array(target.utf8)
        guard !needle.isEmpty, haystack.count >= needle.count else { return self }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return String(decoding: haystack[..<start], as: UTF8.self) + replacement + String(decoding: haystack[(start + needle.count)...], as: UTF8.self)
        }
        return self
    }
}
