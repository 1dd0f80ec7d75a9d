import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// OCI hooks (config.md "POSIX-platform Hooks"): each gets the container's state JSON on stdin,
/// runs with exactly its own `args` and `env`, and is killed after `timeout` seconds. Runtime
/// namespace hooks (prestart, createRuntime, poststart, poststop) are spawned from here;
/// container namespace hooks (createContainer, startContainer) join the container's namespaces
/// first (CLinux's exec trampoline).
package enum HookRunner {
    package enum Place { case runtime, container(pid_t) }

    /// Runs `hooks` in order; the first failure ends the list with an error naming the hook.
    package static func run(_ hooks: [OCIConfig.Hook], kind: String, state: JSON, place: Place) throws(OCIError) {
        for (index, hook) in hooks.enumerated() {
            try runOne(hook, name: "hooks.\(kind)[\(index)] \(hook.path)", state: state, place: place)
        }
    }

    /// Runs every hook of `hooks` whatever the others did (poststart, poststop: the spec has the
    /// lifecycle go on); returns one line per failure, for the caller to warn with.
    package static func runAll(_ hooks: [OCIConfig.Hook], kind: String, state: JSON, place: Place) -> [String] {
        var failures: [String] = []
        for (index, hook) in hooks.enumerated() {
            do { try runOne(hook, name: "hooks.\(kind)[\(index)] \(hook.path)", state: state, place: place) } catch {
                failures.append(error.description)
            }
        }
        return failures
    }

    package static func runOne(_ hook: OCIConfig.Hook, name: String, state: JSON, place: Place) throws(OCIError) {
        let inputRead: FileDescriptor, outputRead: FileDescriptor, errorRead: FileDescriptor
        var inputWrite: FileDescriptor?, outputWrite: FileDescriptor?, errorWrite: FileDescriptor?
        do {
            (inputRead, inputWrite) = try FileDescriptor.pipe("hook stdin")
            (outputRead, outputWrite) = try FileDescriptor.pipe("hook output")
            (errorRead, errorWrite) = try FileDescriptor.pipe("hook error")
        } catch { throw OCIError("\(name): \(error.description)") }
        // The state is small (a pipe holds 64 KiB): written whole and closed before the hook
        // starts, so no process forked on the way (the exec trampoline's) keeps stdin open.
        let text = Array(state.serialized().utf8)
        _ = text.withUnsafeBytes { write(inputWrite!.rawValue, $0.baseAddress, $0.count) }
        inputWrite = nil
        let argv = hook.args.isEmpty ? [hook.path] : hook.args
        var pid: pid_t = 0
        switch place {
        case .runtime:
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_adddup2(&actions, inputRead.rawValue, 0)
            posix_spawn_file_actions_adddup2(&actions, outputWrite!.rawValue, 1)
            posix_spawn_file_actions_adddup2(&actions, outputWrite!.rawValue, 2)
            let arena = CStrings()
            let error = posix_spawn(&pid, hook.path, &actions, nil, arena.array(argv), arena.array(hook.env))
            guard error == 0 else { throw OCIError("\(name): " + SystemError("posix_spawn", hook.path, errno: error).description) }
        case .container(let target):
            let arena = CStrings()
            var process = clinux_process()
            process.path = arena.string(hook.path)
            process.argv = UnsafePointer(arena.array(argv))
            process.envp = UnsafePointer(arena.array(hook.env))
            process.cwd = arena.string("/")
            process.umask = -1
            process.cap_bounding = ~0  // keep the runtime's privileges (it is the runtime's hook)
            process.personality = -1
            process.console_fd = -1
            // Its output goes where the runtime's does: dup the pipe over stdout/stderr around the fork.
            let savedOut = dup(1), savedErr = dup(2)
            dup2(outputWrite!.rawValue, 1)
            dup2(outputWrite!.rawValue, 2)
            pid = clinux_container_exec(target, nil, 0, &process, inputRead.rawValue, errorWrite!.rawValue)
            dup2(savedOut, 1)
            dup2(savedErr, 2)
            close(savedOut)
            close(savedErr)
            guard pid > 0 else { throw OCIError("\(name): " + SystemError("fork", hook.path, errno: -pid).description) }
        }
        outputWrite = nil
        errorWrite = nil

        let (status, timedOut, captured) = waitCapturing(pid, output: outputRead, timeout: hook.timeout)
        let failure = (try? errorRead.readAll(limit: 4096)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        let said = captured.isEmpty ? "" : ": " + String(decoding: captured.prefix(2000), as: UTF8.self).trimmingTrailingNewlines()
        if timedOut { throw OCIError("\(name): timed out after \(hook.timeout ?? 0) s (killed)\(said)") }
        if !failure.isEmpty { throw OCIError("\(name): \(failure)") }
        if status != 0 { throw OCIError("\(name): exited with status \(status)\(said)") }
    }

    /// Waits for the hook, collecting its output, killing it at the timeout.
    package static func waitCapturing(_ pid: pid_t, output: FileDescriptor, timeout: Int?) -> (status: Int32, timedOut: Bool, output: [UInt8]) {
        let deadline = timeout.map { Clock.monotonicNanoseconds() + UInt64($0) * 1_000_000_000 }
        var captured: [UInt8] = []
        var timedOut = false
        var open = true
        var buffer = [UInt8](repeating: 0, count: 4096)
        let pidfd = clinux_pidfd_open(pid)
        defer { if pidfd >= 0 { close(pidfd) } }
        while true {
            var fds = [pollfd(fd: open ? output.rawValue : -1, events: Int16(POLLIN), revents: 0), pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
            var wait: Int32 = -1
            if let deadline {
                let now = Clock.monotonicNanoseconds()
                wait = now >= deadline ? 0 : Int32(min(UInt64(Int32.max), (deadline - now) / 1_000_000 + 1))
            }
            if pidfd < 0 { wait = wait < 0 ? 50 : min(wait, 50) }
            _ = poll(&fds, 2, wait)
            if fds[0].revents != 0 {
                let count = read(output.rawValue, &buffer, buffer.count)
                if count > 0 { if captured.count < 65536 { captured += buffer[0..<count] } } else { open = false }
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                while open {  // what it wrote before exiting
                    let count = read(output.rawValue, &buffer, buffer.count)
                    if count > 0 { captured += buffer[0..<count] } else { open = false }
                }
                return (WaitStatus.exitCode(status), timedOut, captured)
            }
            if let deadline, Clock.monotonicNanoseconds() >= deadline, !timedOut {
                timedOut = true
                kill(pid, SIGKILL)
            }
        }
    }
}

extension String {
    package func trimmingTrailingNewlines() -> String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
