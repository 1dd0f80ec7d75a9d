import CLinux
import Cgroups
import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `create`: the container is made by a monitor process (its parent for life, which keeps its exit
/// status) that this command starts; it returns once the container waits at its entry point.
enum CreateCommand {
    static let flags = [
        Arguments.Flag("bundle", "b", value: true), Arguments.Flag("pid-file", value: true), Arguments.Flag("console-socket", value: true),
        Arguments.Flag("no-pivot"), Arguments.Flag("no-new-keyring"), Arguments.Flag("preserve-fds", value: true),
    ]

    struct Request {
        var id: String
        var bundle: String
        var pidFile: String?
        var consoleSocket: String?
        var noPivot: Bool
    }

    /// Reads the create options. config.json is read once, by whoever makes the container (the
    /// monitor, or `run` in the foreground); its errors reach the caller the same way.
    static func request(_ arguments: Arguments, command: String) throws(OCIError) -> Request {
        let id = try arguments.id(command)
        try arguments.expectingNoMore(than: 1, command)
        if let count = arguments.value("preserve-fds"), count != "0" {
            throw OCIError("\(command): --preserve-fds \(count): passing extra descriptors is not supported by tandem-runtime")
        }
        let bundle = Files.absolute(arguments.value("bundle") ?? ".")
        let absolute = { (path: String?) in path.map(Files.absolute) }
        return Request(id: id, bundle: bundle, pidFile: absolute(arguments.value("pid-file")),
                       consoleSocket: absolute(arguments.value("console-socket")), noPivot: arguments.flag("no-pivot"))
    }

    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: flags, command: "create")
        try MonitorLauncher.launch(try request(arguments, command: "create"), options, startNow: false)
        return 0
    }
}

/// Starts the monitor (`tandem-runtime __monitor`) in its own session and waits until it says the
/// container is created (or started, for `run --detach`), or why not. A monitor that dies, or a
/// Ctrl-C here, leaves nothing behind.
enum MonitorLauncher {
    static func launch(_ request: CreateCommand.Request, _ options: GlobalOptions, startNow: Bool) throws(OCIError) {
        let store = options.store
        _ = try store.create(request.id)
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }
        let reader: FileDescriptor
        var writer: FileDescriptor?
        do { (reader, writer) = try FileDescriptor.pipe("monitor notification") } catch {
            store.remove(request.id, unnamed: true)
            throw OCIError(error.description)
        }

        var arguments = ["tandem-runtime"] + options.forwarded + [MonitorCommand.name, "--bundle", request.bundle]
        if let pidFile = request.pidFile { arguments += ["--pid-file", pidFile] }
        if let socket = request.consoleSocket { arguments += ["--console-socket", socket] }
        if request.noPivot { arguments.append("--no-pivot") }
        if startNow { arguments.append("--start") }
        if let supervisor = CallerReaps.supervisor() {
            options.log.debug("called by \(supervisor), which reaps its containers: the container is born its child")
            arguments.append("--caller-reaps")
        }
        arguments.append(request.id)
        let notifyFD: Int32 = 3
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, writer!.rawValue, notifyFD)
        // Only stdio (the container's) and the notification cross: a caller's other descriptors
        // (its pipes, Foundation's exit-detection socket) must not live on in the monitor.
        clinux_spawn_close_from(&actions, notifyFD + 1)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(clinux_posix_spawn_setsid))
        let arena = CStrings()
        let environment = ["\(MonitorCommand.notifyVariable)=\(notifyFD)"] + Environment.current().filter { !$0.hasPrefix(MonitorCommand.notifyVariable + "=") }
        guard let executable = Files.currentExecutable() else { store.remove(request.id, unnamed: true); throw OCIError("cannot find this program (/proc/self/exe)") }
        var monitor: pid_t = 0
        let error = posix_spawn(&monitor, executable, &actions, &attributes, arena.array(arguments), arena.array(environment))
        writer = nil
        guard error == 0 else { store.remove(request.id, unnamed: true); throw OCIError(SystemError("posix_spawn", executable, errno: error).description) }

        let signals = try? SignalFD([SIGINT, SIGTERM, SIGHUP])
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var fds = [pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0), pollfd(fd: signals?.fd.rawValue ?? -1, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, -1)
            if fds[1].revents != 0, let signal = signals?.next() {
                kill(monitor, SIGKILL)
                var status: Int32 = 0
                waitpid(monitor, &status, 0)
                Cleanup.reclaim(id: request.id, store: store)
                throw OCIError("create \(request.id): interrupted by signal \(signal); nothing was left behind")
            }
            if fds[0].revents != 0 {
                let count = read(reader.rawValue, &buffer, buffer.count)
                // One line is the whole answer (the container, cloned by the monitor, holds the
                // descriptor until it execs, so its end does not mean the answer is complete).
                if count > 0 { answer += buffer[0..<count]; if answer.contains(UInt8(ascii: "\n")) { break }; continue }
                if count < 0 && errno == EINTR { continue }
                break
            }
        }
        let text = String(decoding: answer, as: UTF8.self).trimmingTrailingNewlines()
        if text == "ok" { return }
        var status: Int32 = 0
        waitpid(monitor, &status, 0)
        Cleanup.reclaim(id: request.id, store: store)
        if text.hasPrefix("error ") { throw OCIError(String(text.dropFirst(6))) }
        let how = status & 0x7f != 0 ? "was killed by signal \(status & 0x7f)" : "exited with status \((status >> 8) & 0xff)"
        throw OCIError("create \(request.id): the container's monitor \(how) before the container was created; nothing was left behind")
    }
}

/// Container supervisors (podman's conmon, containerd's shims) call `create` themselves, are child
/// subreapers, and learn the container's exit status by reaping it — as runc and crun leave it.
/// For them the container is cloned with CLONE_PARENT, so the caller is its parent; otherwise the
/// monitor is, and keeps the status for `state`. Whether a process is a subreaper cannot be read
/// from outside (and probing with an orphan would hand the supervisor a stray child), so the
/// caller is recognised by name; TANDEM_RUNTIME_CALLER_REAPS=1 or 0 decides explicitly.
enum CallerReaps {
    static let supervisors = ["conmon", "conmonrs", "containerd-shim", "containerd-shim-runc-v2", "containerd-shim-runc-v1"]

    static func supervisor() -> String? {
        if let value = getenv("TANDEM_RUNTIME_CALLER_REAPS").map({ String(cString: $0) }) {
            return value == "1" ? "a caller that says it reaps (TANDEM_RUNTIME_CALLER_REAPS=1)" : nil
        }
        let parent = getppid()
        let name = (Files.readText("/proc/\(parent)/comm") ?? "").split(separator: "\n").first.map(String.init) ?? ""
        return supervisors.contains(where: { name == $0 || name.hasPrefix("containerd-shim") }) ? "\(name) (pid \(parent))" : nil
    }
}
