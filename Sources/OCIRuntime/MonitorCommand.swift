import Containers
import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `__monitor` (internal): the process `create` leaves behind. It creates the container (as its
/// parent), tells `create` through the notification descriptor, then serves `start` on
/// `<state>/ctl.sock` and waits for the container to end, recording its exit status.
enum MonitorCommand {
    static let name = "__monitor"
    static let notifyVariable = "TANDEM_RUNTIME_NOTIFY_FD"
    static let socketName = "ctl.sock"

    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let flags = CreateCommand.flags + [Arguments.Flag("start"), Arguments.Flag("caller-reaps")]
        let arguments = try Arguments(rest, flags: flags, command: name)
        let id = try arguments.id(name)
        let notify = getenv(notifyVariable).flatMap { Int32(String(cString: $0)) } ?? -1
        unsetenv(notifyVariable)
        if notify >= 0 { _ = fcntl(notify, F_SETFD, FD_CLOEXEC) }  // not for hooks
        func tell(_ text: String) {
            guard notify >= 0 else { return }
            _ = (text + "\n").utf8CString.withUnsafeBufferPointer { write(notify, $0.baseAddress, $0.count - 1) }
        }
        // Signals for the container arrive as records; the monitor itself is not stopped by them.
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
        defer { blocked.restore() }
        signal(SIGPIPE, SIG_IGN)

        let supervisor: Supervisor
        let listener: Int32
        do throws(OCIError) {
            let config = try OCIConfig.load(bundle: arguments.value("bundle") ?? ".")
            for field in config.unknownFields { options.log.debug("config.json: \(field): unknown field, ignored") }
            supervisor = try Supervisor(store: options.store, id: id, config: config, log: options.log)
            supervisor.callerReaps = arguments.flag("caller-reaps")
            try supervisor.create(consoleSocket: arguments.value("console-socket"), noPivot: arguments.flag("no-pivot"),
                                  pidFile: arguments.value("pid-file"))
            do throws(OCIError) {
                listener = try UnixSocket.listen(options.store.directory(id) + "/" + socketName)
                if arguments.flag("start") { try supervisor.start() }
            } catch {
                supervisor.destroy()
                throw error
            }
        } catch {
            tell("error " + error.description)
            return 1
        }
        // The container holds the caller's stdio now; the monitor lets go of it, so a caller
        // reading our output sees its end when the container's ends.
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        for fd: Int32 in 0...2 { dup2(null, fd) }
        close(null)
        options.log.toStandardError = false
        tell("ok")
        if notify >= 0 { close(notify) }
        return serve(supervisor, listener: listener)
    }

    /// Until the container ends: `start` requests on the socket, signals passed on to it.
    static func serve(_ supervisor: Supervisor, listener: Int32) -> Int32 {
        let signals = try? SignalFD([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2])
        let child = supervisor.child
        let pidfd = clinux_pidfd_open(child)
        let socketPath = supervisor.store.directory(supervisor.record.id) + "/" + socketName
        while true {
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0), pollfd(fd: listener, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals?.fd.rawValue ?? -1, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 3, pidfd < 0 ? 100 : -1)
            if fds[2].revents != 0, let signal = signals?.next() { kill(child, signal) }
            if fds[1].revents != 0 { answer(supervisor, listener: listener) }
            var status: Int32 = 0
            // Our child: its wait status. The caller's (--caller-reaps): the pidfd says it ended,
            // and the caller has the status.
            let ended = supervisor.callerReaps ? (fds[0].revents != 0 || (pidfd < 0 && kill(child, 0) != 0))
                : waitpid(child, &status, WNOHANG) == child
            if ended {
                supervisor.log.debug("the container's process \(child) ended" + (supervisor.callerReaps ? " (its caller reaps it)" : ", wait status \(status)"))
                close(listener)
                unlink(socketPath)
                _ = supervisor.finish(waitStatus: supervisor.callerReaps ? nil : status)
                return 0
            }
        }
    }

    /// One request: a line ("start"), one line back ("ok" or "error <message>").
    static func answer(_ supervisor: Supervisor, listener: Int32) {
        let connection = accept(listener, nil, nil)
        guard connection >= 0 else { return }
        _ = fcntl(connection, F_SETFD, FD_CLOEXEC)
        defer { close(connection) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(connection, &buffer, buffer.count)
        let request = count > 0 ? String(decoding: buffer[0..<count], as: UTF8.self).trimmingTrailingNewlines() : ""
        var reply = "ok"
        switch request {
        case "start":
            do { try supervisor.start() } catch { reply = "error " + error.description }
        default:
            reply = "error unknown request \"\(request)\""
        }
        _ = (reply + "\n").utf8CString.withUnsafeBufferPointer { write(connection, $0.baseAddress, $0.count - 1) }
    }
}
