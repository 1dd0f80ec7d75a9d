import Containers
import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `run`: create and start. Without --detach this process is the container's monitor: it waits,
/// passes signals on, deletes the container (unless --keep) and exits with its status.
enum RunCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: CreateCommand.flags + [Arguments.Flag("detach", "d"), Arguments.Flag("keep")], command: "run")
        let request = try CreateCommand.request(arguments, command: "run")
        if arguments.flag("detach") {
            try MonitorLauncher.launch(request, options, startNow: true)
            return 0
        }
        let config = try OCIConfig.load(bundle: request.bundle)
        for field in config.unknownFields { options.log.debug("config.json: \(field): unknown field, ignored") }
        let forwarded = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH]
        var blocked = BlockedSignals(forwarded)
        defer { blocked.restore() }
        // A terminal without a console socket: the container shares ours (it runs in the foreground).
        var foreground = config
        if config.process?.terminal == true && request.consoleSocket == nil { foreground.process?.terminal = false }
        let store = options.store
        _ = try store.create(request.id)
        let runner: Supervisor
        do throws(OCIError) {
            runner = try Supervisor(store: store, id: request.id, config: foreground, log: options.log)
        } catch {
            store.remove(request.id, unnamed: true)
            throw error
        }
        try runner.create(consoleSocket: request.consoleSocket, noPivot: request.noPivot, pidFile: request.pidFile)
        do { try runner.start() } catch {
            // A failed startContainer hook: the container is stopped and deleted (poststop hooks run).
            runner.destroy()
            try? Lifecycle.delete(runner.record, force: true, store: store, log: options.log)
            throw error
        }
        let signals = try? SignalFD(forwarded)
        let child = runner.child
        let pidfd = clinux_pidfd_open(child)
        var waitStatus: Int32 = 0
        while true {
            var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0), pollfd(fd: signals?.fd.rawValue ?? -1, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 2, pidfd < 0 ? 100 : -1)
            if fds[1].revents != 0, let signal = signals?.next() { kill(child, signal) }
            if waitpid(child, &waitStatus, WNOHANG) == child { break }
        }
        if pidfd >= 0 { close(pidfd) }
        let status = runner.finish(waitStatus: waitStatus) ?? 0
        if !arguments.flag("keep") {
            try Lifecycle.delete(runner.record, force: true, store: store, log: options.log)
        }
        return status
    }
}
