import CLinux
import Cgroups
import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `tandem ctr run`'s work, shared by the lean launcher and the full CLI: validate, run (or start
/// detached), report. Returns the process exit status: the container PID 1's status (128+N when
/// signal N ended it), or 125 when Tandem failed.
public enum CtrRunner {
    public static func run(_ options: CtrRunOptions, processStart: UInt64?) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        let spec: ContainerSpec
        switch makeSpec(options) {
        case .success(let made): spec = made
        case .failure(let error): return VMRunner.fail(error.description)
        }
        // A report that cannot be written is bad input: said before anything runs.
        if let path = options.report, Files.kind(Files.directory(of: Files.absolute(path))) != .directory {
            return VMRunner.fail("--report \(path): the directory \(Files.directory(of: Files.absolute(path))) does not exist")
        }
        if options.detach, options.monitorID == nil { return startDetached(options, spec: spec) }
        let notify = options.monitorID != nil ? Int32(getenv("TANDEM_NOTIFY_FD").flatMap { Int32(String(cString: $0)) } ?? -1) : -1
        // The container must not inherit the notification pipe: the front waits for its EOF.
        if notify >= 0 { _ = fcntl(notify, F_SETFD, FD_CLOEXEC) }

        let result: ContainerResult
        do {
            result = try ContainerRuntime.run(spec, detached: options.monitorID != nil, interactive: isatty(0) == 1,
                                              logToStateDirectory: options.monitorID != nil, statistics: options.report != nil) { state in
                if notify >= 0 { writeNotification(notify, "ok \(state.id)\n") }
            }
        } catch {
            if notify >= 0 { writeNotification(notify, "error \(error.description)\n") }
            return VMRunner.fail(error.description)
        }
        if result.oomKilled {
            let limit = result.limits.memoryBytes.map { " (limit \(CgroupLimits.describe(bytes: $0)))" } ?? ""
            StandardError.line("tandem: container killed: out of memory\(limit)")
        } else if let signal = result.interruptedBy {
            StandardError.line("tandem: container stopped by signal \(signal)")
        }
        if let path = options.report {
            let report = CtrRunReport(spec: spec, result: result, processStart: processStart).json().serialized(indent: 2) + "\n"
            do { try Files.write(path, Array(report.utf8)) } catch { return VMRunner.fail("--report \(path): \(error)") }
        }
        // Stopped because tandem got signal N: 128+N (docs/exit-status.md), even when the
        // container's PID 1 ignored it and had to be killed.
        if let signal = result.interruptedBy, !result.oomKilled { return 128 + signal }
        return result.status
    }

    static func writeNotification(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    /// The spec from the options; every error names the option and what is wrong.
    public static func makeSpec(_ options: CtrRunOptions) -> Result<ContainerSpec, ContainerError> {
        if options.image != nil && options.rootfs != nil { return .failure(ContainerError("--image and --rootfs exclude each other")) }
        if options.store != nil && options.imageReference == nil {
            return .failure(ContainerError("--store: for `tandem run IMAGE` (an image from the store), not with --image DIR or --rootfs"))
        }
        if options.imageReference != nil {
            guard options.image == nil, options.rootfs == nil, options.workload == nil else {
                return .failure(ContainerError("an image from the store excludes --image, --rootfs and --workload"))
            }
            let made: ContainerSpec
            do { made = try StoreImage.spec(options) } catch { return .failure(error) }
            return applyOptions(options, to: made)
        }
        let root: ContainerSpec.Root
        if let rootfs = options.rootfs {
            root = .rootfs(rootfs)
        } else if let image = options.image ?? defaultImage() {
            root = .image(image)
        } else {
            return .failure(ContainerError("no image: run `make image` (tandem image build writes the rootfs), or pass --image DIR or --rootfs DIR"))
        }
        var command = options.command
        if command.isEmpty {
            command = ["/init"]
            if let workload = options.workload {
                // tandem-init runs /bin/NAME: a name that is not there is the user's mistake, said now.
                // (`hello` is built into tandem-init.)
                guard !workload.isEmpty, !workload.contains("/"),
                      workload == "hello" || ContainerSpec.resolve("/bin/" + workload, in: rootDirectory(root), path: "") != nil else {
                    return .failure(ContainerError("--workload \(workload): \(rootDirectory(root)) has no /bin/\(workload)"))
                }
                command.append(workload)
            }
        } else if options.workload != nil {
            return .failure(ContainerError("--workload and a command after -- exclude each other"))
        }
        let id = options.monitorID ?? ContainerSpec.newID()
        return applyOptions(options, to: ContainerSpec(id: id, root: root, command: command, hostname: options.hostname))
    }

    /// The options every root shares: name, state, user namespace, network, env, volumes, limits.
    static func applyOptions(_ options: CtrRunOptions, to made: ContainerSpec) -> Result<ContainerSpec, ContainerError> {
        var spec = made
        spec.name = options.name
        if let stateRoot = options.stateRoot { spec.stateRoot = stateRoot }
        if options.userns && ContainerSpec.rootless {
            return .failure(ContainerError("--userns: not as uid \(geteuid()): a rootless container has a user namespace anyway (your uid is root in it); the shifted image copy --userns makes needs root"))
        }
        spec.userNamespace = options.userns
        spec.readOnly = options.readOnly
        if let net = options.net {
            guard let mode = ContainerSpec.Network(rawValue: net) else { return .failure(ContainerError("--net \(net): must be none, loopback, bridge or host")) }
            if mode == .bridge && ContainerSpec.rootless {
                return .failure(ContainerError("--net bridge: not as uid \(geteuid()): the bridge and the container's veth are the host's, made by root"))
            }
            if mode == .host && (options.userns || ContainerSpec.rootless) {
                // As Docker's userns-remap: the host's network namespace belongs to the host's
                // user namespace, so the container's root could not even mount its /sys.
                return .failure(ContainerError("--net host: not with a user namespace (\(options.userns ? "--userns" : "rootless, uid \(geteuid())")): the host's network is owned by the host's user namespace"))
            }
            spec.network = mode
        }
        for text in options.publish {
            do { spec.ports.append(try PublishedPort.parse(text)) } catch { return .failure(error) }
        }
        if !spec.ports.isEmpty && spec.network != .bridge {
            return .failure(ContainerError("--publish \(options.publish[0]): needs --net bridge (\(spec.network == .host ? "with --net host the container's ports are the host's already" : "a port is published to the container's address on Tandem's bridge"))"))
        }
        for variable in options.env {
            guard let equals = variable.firstIndex(of: "="), equals != variable.startIndex else {
                return .failure(ContainerError("--env \(variable): must be NAME=VALUE"))
            }
            let key = variable[..<equals]
            spec.environment.removeAll { $0.hasPrefix(key + "=") }
            spec.environment.append(variable)
        }
        for text in options.volumes {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard (2...3).contains(parts.count), !parts[0].isEmpty, !parts[1].isEmpty,
                  parts.count == 2 || parts[2] == "ro" || parts[2] == "rw" else {
                return .failure(ContainerError("--volume \(text): must be HOST:CONTAINER or HOST:CONTAINER:ro"))
            }
            spec.volumes.append(.init(host: parts[0], container: parts[1], readOnly: parts.count == 3 && parts[2] == "ro"))
        }
        if let memory = options.memory {
            guard let bytes = ByteSize.parse(memory) else { return .failure(ContainerError("--memory \(memory): not a size (like 6m, 512M, 1g)")) }
            guard bytes >= ContainerSpec.minimumMemory else {
                return .failure(ContainerError("--memory \(memory): below the minimum of \(CgroupLimits.describe(bytes: ContainerSpec.minimumMemory))"))
            }
            spec.limits.memoryBytes = bytes
        }
        if let swap = options.memorySwap {
            if swap == "-1" { spec.limits.memoryAndSwapBytes = .max } else {
                guard let bytes = ByteSize.parse(swap) else { return .failure(ContainerError("--memory-swap \(swap): not a size, or -1 for unlimited")) }
                spec.limits.memoryAndSwapBytes = bytes
            }
        }
        if let cpus = options.cpus {
            let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
            guard let value = Double(cpus), value >= 0.01, value <= Double(online) else {
                return .failure(ContainerError("--cpus \(cpus): must be a number from 0.01 to this host's \(online) CPUs"))
            }
            spec.limits.cpuQuotaMicroseconds = Int(value * Double(spec.limits.cpuPeriodMicroseconds))
        }
        if let pids = options.pids {
            guard let value = Int(pids), value >= 1 else { return .failure(ContainerError("--pids \(pids): must be a whole number, at least 1")) }
            spec.limits.pids = value
        }
        return .success(spec)
    }

    static func rootDirectory(_ root: ContainerSpec.Root) -> String {
        switch root {
        case .image(let path), .rootfs(let path): path
        case .layers(let layers): layers.first ?? ""
        }
    }

    /// The rootfs `tandem image build` writes next to the initramfs.
    public static func defaultImage() -> String? {
        TinyGuests.buildDirectory(named: "image").map { $0 + "/rootfs" }.flatMap { Files.kind($0) == .directory ? $0 : nil }
    }

    /// `-d`: starts this same command as a monitor in its own session (it waits for the
    /// container and cleans up after it), waits until the container runs, prints its id.
    static func startDetached(_ options: CtrRunOptions, spec: ContainerSpec) -> Int32 {
        do { _ = try spec.validate() } catch { return VMRunner.fail(error.description) }
        guard let executable = Files.currentExecutable() else { return VMRunner.fail("cannot find my own executable") }
        var pipe: [Int32] = [0, 0]
        guard clinux_pipe_cloexec(&pipe) == 0 else { return VMRunner.fail(SystemError("pipe2").description) }
        let reader = FileDescriptor(adopting: pipe[0], label: "monitor notification")
        var writer: FileDescriptor? = FileDescriptor(adopting: pipe[1], label: "monitor notification")

        var arguments = options.imageReference.map { ["tandem", "run", $0, "--monitor-id", spec.id] } ?? ["tandem", "ctr", "run", "--monitor-id", spec.id]
        if let store = options.store { arguments.append("--store=\(store)") }
        if let image = options.image { arguments += ["--image", image] }
        if let rootfs = options.rootfs { arguments += ["--rootfs", rootfs] }
        for (flag, value) in [("--name", options.name), ("--memory", options.memory), ("--memory-swap", options.memorySwap),
                              ("--cpus", options.cpus), ("--pids", options.pids), ("--hostname", options.hostname),
                              ("--net", options.net), ("--workload", options.workload), ("--report", options.report),
                              ("--state-root", options.stateRoot)] {
            if let value { arguments.append("\(flag)=\(value)") }
        }
        if options.userns { arguments.append("--userns") }
        if options.readOnly { arguments.append("--read-only") }
        for volume in options.volumes { arguments.append("--volume=\(volume)") }
        for port in options.publish { arguments.append("--publish=\(port)") }
        for variable in options.env { arguments.append("--env=\(variable)") }
        if !options.command.isEmpty { arguments += ["--"] + options.command }

        let notifyFD: Int32 = 3
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writer!.rawValue, notifyFD)
        _ = clinux_spawn_close_from(&actions, notifyFD + 1)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(clinux_posix_spawn_setsid))
        let environment = ["TANDEM_NOTIFY_FD=\(notifyFD)"] + Environment.current().filter { !$0.hasPrefix("TANDEM_NOTIFY_FD=") }
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
        var pid: pid_t = 0
        let error = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        writer = nil
        guard error == 0 else { return VMRunner.fail(SystemError("posix_spawn", executable, errno: error).description) }
        let answer = String(decoding: (try? reader.readAll(limit: 65536)) ?? [], as: UTF8.self)
        if answer.hasPrefix("ok ") {
            StandardOutput.write(String(answer.dropFirst(3)))
            return 0
        }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let message = answer.hasPrefix("error ") ? String(answer.dropFirst(6).dropLast()) : "the container's monitor exited before the container started"
        return VMRunner.fail(message)
    }
}
