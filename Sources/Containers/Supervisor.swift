import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The container's parent: creates it (cgroups, clone, ids, hooks) up to its entry point, lets it
/// exec at `start`, waits for it and records how it ended. Runs in the monitor process that
/// `create` leaves behind (or in `run` itself). Whatever it made is undone if creation fails.
package final class Supervisor {
    package let store: RecordStore
    package let config: OCIConfig
    package let launch: Launch
    package let log: RuntimeLog
    package var record: Record
    /// The container is born the caller's child (CLONE_PARENT): a subreaper above us reaps it.
    package var callerReaps = false
    package private(set) var cgroup: (any CgroupManager)?
    package private(set) var child: pid_t = 0
    /// CLOCK_MONOTONIC when the child was cloned (for `tandem ctr run --report`).
    package private(set) var clonedNanoseconds: UInt64 = 0
    private var syncWrite: FileDescriptor?
    private var readyRead: FileDescriptor?
    private var execWrite: FileDescriptor?
    private var errorRead: FileDescriptor?

    /// What a front end decides beyond config.json.
    package struct Options {
        /// The root as an overlay mounted by the child in its own mount namespace (nothing to
        /// unmount on the host, whatever happens to us): `lower` read-only and shared, `upper`
        /// and `work` this container's — or, nil, a tmpfs in its mount namespace (a scratch
        /// layer that needs nothing made or removed on the host); `config.rootPath` is the mount
        /// point. Without it the root is config.json's root.path, as prepared by the caller
        /// (podman, containerd).
        package var layers: (lower: String, upper: String?, work: String?)?
        /// The overlay's xattrs in user.* (its upper layer is written from a user namespace).
        package var overlayUserXattr = false
        /// With a new user namespace: the image's layer directories (top first), attached as
        /// idmapped mounts (see clinux_idmapped_tree) in place of `layers.lower`.
        package var idmappedLayers: [String] = []
        /// A new network namespace gets `lo` up, as runc and crun do; `tandem ctr --net none` leaves it down.
        package var loopbackUp = true
        /// `tandem ctr --net bridge`: the address leased for it; its eth0 is made once the child
        /// has its network namespace (where OCI's createRuntime hooks, CNI's place, would run).
        package var bridge: BridgeNetwork.Lease?
        /// process.args[0] as the front end already found it inside the root (not looked up twice).
        package var program: String?
        package init() {}
    }
    let options: Options

    package init(store: RecordStore, id: String, config: OCIConfig, log: RuntimeLog, options: Options = Options()) throws(OCIError) {
        self.store = store
        self.config = config
        self.log = log
        self.options = options
        launch = try Launch(config: config, files: options.layers?.lower, program: options.program)
        for warning in config.warnings { log.notice("config.json: " + warning) }
        try OCIConfig.checkRoot(config.rootPath)  // a new container's root (exec enters a running one's)
        record = Record(id: id, bundle: config.bundle, rootfs: config.rootPath, status: .creating)
        record.annotations = config.annotations
        record.command = config.process?.args ?? []
        record.poststop = config.hooks.poststop
        record.monitor = getpid()
        store.holdUntilExit(id)  // the monitor too (its creator, `tandem-runtime create`, exits)
        record.monitorStart = ProcessInfoLite.startTime(getpid()) ?? 0
        record.createdNanoseconds = Clock.realtimeNanoseconds()
    }

    /// The OCI state hooks receive.
    package func state(_ status: Record.Status) -> JSON { record.ociState(status: status, pid: child) }

    /// Makes the container up to its entry point: state `created`.
    /// `startsNext`: the caller starts it right away (`tandem ctr run`), so `created` is not
    /// written down on the way to `running` (a caller killed in between leaves a record that
    /// still names the container's cgroups: sweeping it kills the process too).
    package func create(consoleSocket: String?, noPivot: Bool, pidFile: String?, startsNext: Bool = false) throws(OCIError) {
        do throws(OCIError) {
            // (The first state is written once the child is cloned and its cgroups planned: until
            // then the directory alone says "creating", and there is nothing to clean up but it —
            // a child whose parent dies before that sees its pipe end and exits.)
            try store.saveAnnotations(record)
            try makeContainer(consoleSocket: consoleSocket, noPivot: noPivot, startsNext: startsNext)
            if let pidFile { try Self.writePidFile(pidFile, child) }
            record.status = .created
            if !startsNext { try store.save(record) }
        } catch {
            destroy()
            throw error
        }
    }

    /// `--debug`: milliseconds since the monitor started, per step of a create (and of a run's end).
    package func mark(_ step: String) {
        guard log.debugEnabled else { return }
        log.debug(String(format3: Double(Clock.monotonicNanoseconds() - began) / 1e6) + " ms: " + step)
    }
    private let began = Clock.monotonicNanoseconds()

    /// Set when the go-ahead to exec went with the setup (see `makeContainer`).
    private var execSent = false

    private func makeContainer(consoleSocket: String?, noPivot: Bool, startsNext: Bool) throws(OCIError) {
        mark("create begins")
        let process = launch.process
        // A terminal: the pty's master goes to whoever listens on the console socket.
        var console: (master: Int32, slave: Int32, path: String)?
        defer { if let console { close(console.master); close(console.slave) } }
        if process.terminal {
            guard let consoleSocket else {
                throw OCIError("process.terminal is true: create needs --console-socket (a unix socket that receives the pty's master)")
            }
            console = try Terminal.openPair(size: process.consoleSize)
            try Terminal.sendMaster(console!.master, to: consoleSocket)
        }

        guard let layout = CgroupLayout.detect() else {
            throw OCIError("no cgroup controllers under /sys/fs/cgroup (neither cgroup2 nor v1 controller mounts)")
        }
        let (parent, name) = try CgroupPlacement.resolve(config.cgroupsPath, id: record.id)
        let extra = ResourceWriter.extraControllers(config, version: layout.version)
        // The cgroups are made while the child sets up its mounts (below); they are planned now.
        // (A leaf that exists already is someone else's: refused before it could be written down.)
        var planned = layout.plannedDirectories(parent: parent, name: name, extra: extra)
        let where_ = config.cgroupsPath ?? "(default /\(parent)/\(name))"
        // Rootless: cgroups only where this user may make them (a delegated subtree); without,
        // no limits can be had, and device rules are moot (a user namespace cannot mknod).
        if geteuid() != 0, let denied = CgroupLayout.unwritable(planned) {
            if let limit = config.resources.firstLimit {
                throw OCIError("config.json: linux.resources.\(limit): a limit needs a cgroup, and running as uid \(geteuid()) (rootless) this user may not make one in \(denied) (delegate a cgroup v2 subtree to the user, as systemd does for podman, or leave the limit out)")
            }
            log.debug("rootless: no cgroup (\(denied) is not writable by uid \(geteuid())); linux.resources.devices is moot in a user namespace")
            planned = []
        }
        let withCgroups = !planned.isEmpty
        if let taken = CgroupLeftovers.leaves(planned).first(where: { Files.kind($0) != .missing }) {
            throw OCIError("linux.cgroupsPath \(where_): \(taken) exists already")
        }
        record.cgroups = planned
        // Where a process joins, known from the plan too: the leaves' cgroup.procs.
        record.cgroupProcs = CgroupLeftovers.leaves(planned).map { $0 + "/cgroup.procs" }
        // The files the child joins them by (v1; see CgroupManager.joinFiles), named for its messages.
        let plannedJoins = layout.version == .v1 ? CgroupLeftovers.leaves(planned).map { $0 + "/tasks" } : []
        let idMaps = try IDMaps.plan(config)
        let seccomp = try config.seccomp.map { profile throws(OCIError) in try CompiledSeccomp.compile(profile) }
        if let seccomp, seccomp.unknownSyscalls > 0 {
            log.debug("linux.seccomp: \(seccomp.unknownSyscalls) syscall names unknown to libseccomp were skipped")
        }

        mark("seccomp compiled")
        let syncRead: FileDescriptor, execRead: FileDescriptor
        var readyWrite: FileDescriptor?, errorWrite: FileDescriptor?
        do {
            (syncRead, syncWrite) = try FileDescriptor.seqpacketPair("sync socket")
            (readyRead, readyWrite) = try FileDescriptor.pipe("ready pipe")
            (execRead, execWrite) = try FileDescriptor.pipe("exec pipe")
            (errorRead, errorWrite) = try FileDescriptor.pipe("error pipe")
        } catch { throw OCIError(error.description) }

        // The C description.
        let arena = CStrings()
        var c = clinux_container()
        c.clone_flags = launch.cloneFlags | (callerReaps ? CLONE_PARENT : 0)
        var joins: [clinux_join] = []
        for namespace in config.namespaces.sorted(by: { ($0.type == "user" ? 0 : 1) < ($1.type == "user" ? 0 : 1) }) {
            guard let path = namespace.path else { continue }
            if namespace.type == "pid" { c.pid_namespace = arena.string(path); continue }
            joins.append(clinux_join(type: Launch.namespaceFlags[namespace.type] ?? 0, path: arena.string(path)))
        }
        c.joins = UnsafePointer(arena.copy(joins))
        c.join_count = Int32(joins.count)
        if let hostname = config.hostname, !hostname.isEmpty { c.hostname = arena.string(hostname) }
        if let domainname = config.domainname, !domainname.isEmpty { c.domainname = arena.string(domainname) }
        c.root = arena.string(config.rootPath)
        c.root_propagation = config.rootfsPropagation
        c.no_pivot = noPivot ? 1 : 0
        c.host_mount_namespace = config.has("mount") ? 0 : 1
        c.read_only_root = config.rootReadonly ? 1 : 0
        if let layers = options.layers {
            c.lower = arena.string(layers.lower)
            c.upper = layers.upper.map(arena.string)
            c.work = layers.work.map(arena.string)
            c.overlay_userxattr = options.overlayUserXattr ? 1 : 0
        }
        if !options.idmappedLayers.isEmpty {
            guard config.newNamespace("user"), options.layers != nil, options.idmappedLayers.count <= Int(CLINUX_MAX_IDMAPPED) else {
                throw OCIError("idmapped layers: a new user namespace, an overlay and at most \(CLINUX_MAX_IDMAPPED) layers are needed")
            }
            c.lower = nil
            c.idmapped_lower_count = Int32(options.idmappedLayers.count)
        }
        c.loopback_up = options.loopbackUp && config.newNamespace("network") ? 1 : 0
        c.make_cwd = 1  // a missing process.cwd is made, as runc makes it (and Docker an image's WorkingDir)
        let (mounts, firstCgroupMount) = launch.mounts(layout: layout, console: console?.path) { controller in
            withCgroups ? layout.plannedDirectory(for: controller, parent: parent, name: name, extra: extra) : nil
        }
        c.mounts = UnsafePointer(arena.copy(mounts.map {
            clinux_mount(source: arena.string($0.source), target: arena.string($0.target), fstype: $0.fstype.map(arena.string), flags: $0.flags,
                         data: $0.data.map(arena.string), make_target: $0.make, remount: $0.remount ? 1 : 0, optional: 0, propagation: $0.propagation)
        }))
        c.mount_count = Int32(mounts.count)
        // The cgroup binds (and what follows them) wait until the cgroups exist.
        c.late_mount_count = Int32(mounts.count - (firstCgroupMount ?? mounts.count))
        let devices = launch.deviceNodes.map { entry in
            var node = entry.node
            node.path = arena.string(entry.path)
            return node
        }
        c.devices = UnsafePointer(arena.copy(devices))
        c.device_count = Int32(devices.count)
        let symlinks = launch.suppliesDefaultDevices ? Defaults.deviceSymlinks.flatMap { [$0.0, $0.1] } : []
        c.symlinks = arena.constArray(symlinks)
        c.symlink_count = Int32(symlinks.count / 2)
        let sysctls = config.sysctl.flatMap { ["/proc/sys/" + $0.0.replacingDots(), $0.1] }
        c.sysctls = arena.constArray(sysctls)
        c.sysctl_count = Int32(sysctls.count / 2)
        c.masked_paths = arena.constArray(config.maskedPaths)
        c.masked_count = Int32(config.maskedPaths.count)
        c.readonly_paths = arena.constArray(config.readonlyPaths)
        c.readonly_count = Int32(config.readonlyPaths.count)
        c.process = launch.cProcess(arena, seccomp: seccomp, consoleFD: console?.slave ?? -1)
        c.process.keep_groups = idMaps == .ownIDs ? 1 : 0
        c.cgroup_joins = arena.constArray(plannedJoins)
        c.cgroup_join_count = Int32(plannedJoins.count)
        let createHooks = !(config.hooks.prestart.isEmpty && config.hooks.createRuntime.isEmpty && config.hooks.createContainer.isEmpty)
        c.join_report = createHooks || options.bridge != nil ? 1 : 0
        c.sync_fd = syncRead.rawValue
        c.ready_fd = readyWrite!.rawValue
        c.exec_fd = execRead.rawValue
        c.error_fd = errorWrite!.rawValue

        child = clinux_container_spawn(&c)
        guard child > 0 else { let code = -child; child = 0; throw OCIError(SystemError("clone", record.id, errno: code).description) }
        readyWrite = nil
        errorWrite = nil
        record.pid = child
        clonedNanoseconds = Clock.monotonicNanoseconds()
        mark("cloned")
        record.pidStart = ProcessInfoLite.startTime(child) ?? 0

        if config.newNamespace("user") { try IDMaps.write(config, to: child, how: idMaps) }
        if let score = process.oomScoreAdj {
            do { try Files.write("/proc/\(child)/oom_score_adj", Array(String(score).utf8)) } catch {
                throw OCIError("config.json: process.oomScoreAdj: \(error.description)")
            }
        }
        // Go: the child builds its root while we make its cgroups; the second go-ahead carries
        // them (it joins them itself) and everything after its first mounts (the cgroup binds,
        // pivot_root on) happens inside them. With hooks to run at that point it reports once in
        // and waits for a third; without, and for a caller that starts it next (without
        // startContainer hooks), the go-ahead to exec goes along: the child runs straight through
        // instead of waiting for our answers to its reports.
        if options.idmappedLayers.isEmpty {
            try poke(syncWrite!, "sync")
        } else {
            try sendIdmappedLayers()
        }
        // Written down before they exist: a monitor killed while making them (Ctrl-C on create,
        // SIGKILL) leaves a record that delete and the creator's cleanup remove them by.
        try store.save(record)
        guard withCgroups else {
            try sendCgroups(nil, plannedJoins: [])
            return try finishSetup(createHooks: createHooks, startsNext: startsNext)
        }
        let manager: any CgroupManager
        do {
            manager = try layout.create(parent: parent, name: name, extra: extra)
        } catch {
            throw OCIError("linux.cgroupsPath \(where_): \(error.description)")
        }
        cgroup = manager
        mark("cgroup made")
        // Written again only if what was made differs from the plan (it does not, unless the
        // layout changed in between).
        if manager.directories != planned || Set(manager.processFiles) != Set(record.cgroupProcs) {
            record.cgroups = manager.directories
            record.cgroupProcs = manager.processFiles
            try store.save(record)
        }
        for warning in try ResourceWriter.apply(config, to: manager) { log.notice("config.json: " + warning) }
        mark("limits written")
        try sendCgroups(manager, plannedJoins: plannedJoins)
        mark("cgroups sent")
        try finishSetup(createHooks: createHooks, startsNext: startsNext)
    }

    /// From the second go-ahead to the entry point: hooks once the child is in its cgroups.
    private func finishSetup(createHooks: Bool, startsNext: Bool) throws(OCIError) {
        if startsNext && config.hooks.startContainer.isEmpty {
            try poke(execWrite!, "exec")
            execWrite = nil
            execSent = true
        }
        try awaitReport("h")
        if createHooks || options.bridge != nil {
            try awaitReport("j")
        }
        if let lease = options.bridge {
            do { try BridgeNetwork.attach(lease, pid: child) } catch { throw OCIError(error.description) }
            mark("eth0 on \(BridgeNetwork.bridge)")
        }
        if createHooks {
            let state = state(.creating)
            try HookRunner.run(config.hooks.prestart, kind: "prestart", state: state, place: .runtime)
            try HookRunner.run(config.hooks.createRuntime, kind: "createRuntime", state: state, place: .runtime)
            try HookRunner.run(config.hooks.createContainer, kind: "createContainer", state: state, place: .container(child))
        }
        mark("mounts done, hooks run")
        if createHooks || options.bridge != nil { try poke(syncWrite!, "sync") }
        // (The sync socket stays open: the child has queued its scratch layer on it for
        // `writableLayerBytes`. It has read its last go-ahead; after exec it holds no end.)
        try awaitReport("r")
        mark("at its entry point")
    }

    /// The second go-ahead: the child's cgroup files, open, for it to join (v1; the planned ones,
    /// whose names it has). Otherwise (v2, or a layout changed since the plan) we move it
    /// ourselves, through cgroup.procs, and the go-ahead carries nothing.
    private func sendCgroups(_ manager: (any CgroupManager)?, plannedJoins: [String]) throws(OCIError) {
        var files: [FileDescriptor] = []
        if let manager, !plannedJoins.isEmpty && manager.joinFiles == plannedJoins {
            for path in plannedJoins {
                do { files.append(try FileDescriptor.open(path, O_WRONLY)) } catch { throw failure(error.description) }
            }
        } else if let manager {
            // (A child that failed meanwhile is gone: its own message says why.)
            do { try manager.add(pid: child) } catch { throw failure(error.description) }
        }
        let result = files.map(\.rawValue).withUnsafeBufferPointer { clinux_send_fds(syncWrite!.rawValue, $0.baseAddress, Int32($0.count), 1) }
        guard result == 0 else { throw failure(SystemError("sendmsg", "sync socket", errno: -result).description) }
    }

    /// Bytes the container wrote to its own layer (the overlay's upper), measured after it has
    /// ended: a scratch tmpfs through the descriptor the child queued (statfs: its used pages);
    /// an upper directory on the host by its allocated blocks. Nil without an overlay.
    package func writableLayerBytes() -> UInt64? {
        guard let layers = options.layers else { return nil }
        if let upper = layers.upper { return Self.allocatedBytes(upper) }
        guard let syncWrite else { return nil }
        let fd = clinux_take_fd(syncWrite.rawValue)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var info = statfs()
        guard fstatfs(fd, &info) == 0 else { return nil }
        return UInt64(info.f_blocks - info.f_bfree) * UInt64(info.f_bsize)
    }

    /// Blocks allocated under `path` (symlinks not followed), in bytes.
    static func allocatedBytes(_ path: String) -> UInt64 {
        var info = stat()
        guard lstat(path, &info) == 0 else { return 0 }
        var total = UInt64(info.st_blocks) * 512
        if info.st_mode & S_IFMT == S_IFDIR { for name in Files.list(path) { total += allocatedBytes(path + "/" + name) } }
        return total
    }

    /// The first go-ahead with the image's layers attached: each an idmapped, read-only, detached
    /// mount made here (host root may make them; the child may not), mapped through the child's
    /// user namespace, whose ids are written by now.
    private func sendIdmappedLayers() throws(OCIError) {
        let namespace: FileDescriptor
        do { namespace = try FileDescriptor.open("/proc/\(child)/ns/user", O_RDONLY) } catch { throw failure(error.description) }
        var mounts: [FileDescriptor] = []
        for layer in options.idmappedLayers {
            let fd = clinux_idmapped_tree(layer, namespace.rawValue)
            guard fd >= 0 else {
                throw failure(SystemError("open_tree + mount_setattr (an idmapped mount; Linux 5.12+, and overlay over it 5.19+)", layer, errno: -fd).description)
            }
            mounts.append(FileDescriptor(adopting: fd, label: layer))
        }
        let result = mounts.map(\.rawValue).withUnsafeBufferPointer { clinux_send_fds(syncWrite!.rawValue, $0.baseAddress, Int32($0.count), 1) }
        guard result == 0 else { throw failure(SystemError("sendmsg", "sync socket (the image's layers)", errno: -result).description) }
    }

    private func poke(_ fd: FileDescriptor, _ label: String) throws(OCIError) {
        var go: UInt8 = 1
        guard write(fd.rawValue, &go, 1) == 1 else { throw failure(SystemError("write", label + " pipe").description) }
    }

    /// Reads the child's next report; on EOF the child failed, and the error pipe says where.
    private func awaitReport(_ expect: Character) throws(OCIError) {
        var byte: UInt8 = 0
        var count = 0
        repeat { count = read(readyRead!.rawValue, &byte, 1) } while count < 0 && errno == EINTR
        if count == 1, Character(Unicode.Scalar(byte)) == expect { return }
        // A memory limit below what setting up takes: the kernel killed the process (runc,
        // which sets the limit after the process joins, names the limit and the usage too).
        if let cgroup, cgroup.oomKills() > 0 {
            let limit = config.resources.memoryLimit.map(String.init) ?? "?"
            let peak = cgroup.statistics().memoryPeakBytes.map(String.init) ?? "?"
            throw failure("config.json: linux.resources.memory.limit \(limit): the container's process was killed for lack of memory while it was set up (peak usage \(peak) bytes)")
        }
        throw failure("the container's process ended during setup")
    }

    /// The child's own message, when it wrote one.
    private func failure(_ fallback: String) -> OCIError {
        let message = (try? errorRead?.readAll(limit: 4096)).flatMap { $0 }.map { String(decoding: $0, as: UTF8.self) } ?? ""
        return OCIError(message.isEmpty ? fallback : "container setup failed: \(message)")
    }

    /// `start`: startContainer hooks, then the program runs; poststart hooks before returning.
    package func start() throws(OCIError) {
        guard record.status == .created, execWrite != nil || execSent else {
            throw OCIError("container \"\(record.id)\" is not created (it is \(record.currentStatus.rawValue))")
        }
        if let execWrite {
            do {
                try HookRunner.run(config.hooks.startContainer, kind: "startContainer", state: state(.created), place: .container(child))
            } catch {
                kill(child, SIGKILL)
                throw error
            }
            try poke(execWrite, "exec")
            self.execWrite = nil
        }
        // Written while the child execs; a failed exec (below) is undone by the caller.
        record.status = .running
        record.startedNanoseconds = Clock.realtimeNanoseconds()
        try store.save(record)
        // The error pipe closes at exec (or carries the failing step).
        let message = (try? errorRead?.readAll(limit: 4096)).flatMap { $0 } ?? []
        errorRead = nil
        if !message.isEmpty { throw OCIError("starting the container failed: " + String(decoding: message, as: UTF8.self)) }
        for failure in HookRunner.runAll(config.hooks.poststart, kind: "poststart", state: state(.running), place: .runtime) {
            log.notice(failure + " (the other poststart hooks ran, and the container keeps running, as the spec says)")
        }
    }

    /// The container ended: its status (unknown when the caller reaps it), its cgroup emptied
    /// and removed, `stopped` recorded.
    @discardableResult
    /// `oomKilled`: what the caller already read from the cgroup (else it is read here).
    /// `keepRecord: false`: the caller removes the container's directory next, so `stopped` is
    /// not written.
    package func finish(waitStatus: Int32?, oomKilled: Bool? = nil, keepRecord: Bool = true) -> Int32? {
        child = 0
        let status = waitStatus.map(WaitStatus.exitCode)
        record.finishedNanoseconds = Clock.realtimeNanoseconds()
        record.oomKilled = oomKilled ?? ((cgroup?.oomKills() ?? 0) > 0)
        // destroy() kills whatever is left in it (the pid namespace's other processes die with its
        // PID 1; an exec'd process in a shared one may not).
        do { try cgroup?.destroy() } catch { log.warning("removing the container's cgroup: \(error.description)") }
        cgroup = nil
        record.status = .stopped
        record.exitStatus = status
        record.cgroups = []
        if keepRecord {
            do { try store.save(record) } catch { log.warning(error.description) }
        }
        return status
    }

    /// Undoes a failed create: the child, the cgroup, the state directory.
    package func destroy() {
        if child > 0 {
            kill(child, SIGKILL)
            var status: Int32 = 0
            if !callerReaps { waitpid(child, &status, 0) }
            child = 0
        }
        do { try cgroup?.destroy() } catch { log.warning(error.description) }
        cgroup = nil
        store.remove(record.id, name: record.name, unnamed: record.name == nil)
    }

    package static func writePidFile(_ path: String, _ pid: pid_t) throws(OCIError) {
        let temporary = Files.directory(of: path) + "/.\(path.split(separator: "/").last ?? "pid").\(getpid())"
        do { try Files.write(temporary, Array(String(pid).utf8), mode: 0o644) } catch { throw OCIError("--pid-file \(path): \(error.description)") }
        guard rename(temporary, path) == 0 else {
            let error = SystemError("rename", path)
            unlink(temporary)
            throw OCIError("--pid-file \(path): \(error.description)")
        }
    }
}

/// Where the container's cgroup goes (linux.cgroupsPath).
package enum CgroupPlacement {
    /// Tandem's parent for containers whose config names no cgroupsPath, or a relative one.
    package static let defaultParent = "tandem-runtime"

    package static func resolve(_ path: String?, id: String) throws(OCIError) -> (parent: String, name: String) {
        guard let path, !path.isEmpty else { return (defaultParent, id) }
        if path.contains(":") {
            throw OCIError("config.json: linux.cgroupsPath \"\(path)\": a systemd slice (slice:prefix:name) needs --systemd-cgroup, which this runtime does not support; use a cgroupfs path (podman: --cgroup-manager=cgroupfs)")
        }
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.isEmpty, !parts.contains(".."), !parts.contains(".") else {
            throw OCIError("config.json: linux.cgroupsPath \"\(path)\": not a cgroup path")
        }
        let parent = (path.hasPrefix("/") ? [] : [defaultParent]) + parts.dropLast()
        return (parent.joined(separator: "/"), parts.last!)
    }
}

extension String {
    /// A number with three decimals, without Foundation's String(format:).
    package init(format3 value: Double) {
        let thousandths = Int((value * 1000).rounded())
        let fraction = String(abs(thousandths) % 1000)
        self = "\(thousandths / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    package func replacingDots() -> String { String(map { $0 == "." ? "/" : $0 }) }
}
