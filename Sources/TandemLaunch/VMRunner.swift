import BootLoader
import HostFacts
import HostOS
import MicroVM
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm run`'s work, shared by the lean launcher and the full CLI: resolve the guest, build
/// the machine, run it, report. Returns the process exit status (docs/exit-status.md); every
/// failure prints one line on stderr first.
public enum VMRunner {
    /// Why a Linux guest is not started on this host (emulated KVM: ~1M instructions/s), or nil
    /// where /dev/kvm has hardware virtualisation. Said before the long silence a boot would be.
    public static func emulatedRefusal(kvmDevice: String = "/dev/kvm") -> String? {
        let mode = HostFacts.probeKVMMode(kvmPath: kvmDevice)
        guard mode != .hardware else { return nil }
        return "this host's virtualisation is \(mode.rawValue) (\(mode.explanation)): a Linux guest would take minutes to boot, "
            + "if it boots at all. Run it in the nested lab (`tandem lab nested`), or pass --allow-emulated to try anyway"
    }

    public static func run(_ options: VMRunOptions, processStart: UInt64?) -> Int32 {
        runMachine(options, processStart: processStart).status
    }

    /// `run`, then the end of the process: the exit status goes to whoever waits for it without
    /// waiting for the kernel to tear the VM down (`Machine.exitLeavingTeardown`). For the
    /// commands whose process ends with the run (`tandem vm run`).
    public static func runAndExit(_ options: VMRunOptions, processStart: UInt64?) -> Never {
        exit(runLeavingTeardown(options, processStart: processStart))
    }

    /// Returns only when the machine cannot be left to the kernel (none was built, or it has taps),
    /// and then only once it is released.
    private static func runLeavingTeardown(_ options: VMRunOptions, processStart: UInt64?) -> Int32 {
        let (status, machine) = runMachine(options, processStart: processStart)
        if let machine, machine.canLeaveTeardown { machine.exitLeavingTeardown(status) }
        return status
    }

    /// The run, and the machine it ran (nil when none was built), still alive.
    static func runMachine(_ options: VMRunOptions, processStart: UInt64?) -> (status: Int32, machine: Machine?) {
        signal(SIGPIPE, SIG_IGN)
        if let problem = VMRunOptions.timeoutProblem(options.timeout) { return (fail(problem), nil) }
        let console = FileConsoleSink(fd: options.json ? 2 : 1)
        let machine: Machine
        switch options.restore != nil ? restoreMachine(options, console: console, processStart: processStart)
                                      : buildMachine(options, console: console, processStart: processStart) {
        case .success(let built): machine = built
        case .failure(let message): return (fail(message.text), nil)
        }
        // A Linux guest on emulated KVM runs ~1M instructions/s: say so before the long silence.
        if options.restore == nil ? options.tiny == nil : machine.config.isLinux, !options.allowEmulated, let refusal = emulatedRefusal(kvmDevice: options.kvmDevice) { return (fail(refusal), machine) }
        // Keys typed on a terminal go to the guest's console (an interactive shell works); the
        // terminal is raw for the run only.
        var terminal = RawTerminal(fd: machine.config.consoleInput ?? -1)
        if terminal.isRaw { StandardError.line("tandem: console input goes to the guest; Ctrl-A x stops the VM") }
        let report = machine.run()
        terminal.restore()
        describe(report.outcome)
        for device in report.devices {
            if let failure = device.failure { StandardError.line("tandem: the guest's driver broke \(device.name): \(failure); the device waits for a reset") }
        }
        if options.json {
            let mode = HostFacts.probeKVMMode(kvmPath: options.kvmDevice)
            StandardOutput.write(report.json(hostMode: mode.rawValue).serialized() + "\n")
        }
        return (report.exitStatus, machine)
    }

    /// One clear line on stderr, and Tandem's error status.
    public static func fail(_ message: String) -> Int32 {
        StandardError.line("tandem: error: \(message)")
        return ExitStatus.tandemError
    }

    public struct Message: Error, CustomStringConvertible {
        public let text: String
        public init(text: String) { self.text = text }
        public var description: String { text }
    }

    /// Reads the images and builds the machine. The image bytes live only inside this call: once
    /// they are in guest RAM they are released, not held for the whole run.
    static func buildMachine(_ options: VMRunOptions, console: FileConsoleSink, processStart: UInt64?) -> Result<Machine, Message> {
        if options.tiny != nil, options.rootDisk != nil {
            return .failure(Message(text: "--root-disk boots Linux from the disk; a tiny guest takes its disks as --drive"))
        }
        let drives: [VMConfig.Drive]
        switch options.parsedDrives() {
        case .success(let parsed): drives = parsed
        case .failure(let message): return .failure(message)
        }
        // Taps first: the guest's address goes on its command line. They close (and a tap Tandem
        // made disappears) on any failure below, when `nets` is released.
        let nets: [VMConfig.Net]
        switch options.openNets() {
        case .success(let opened): nets = opened
        case .failure(let message): return .failure(message)
        }
        let vsock: VirtioVsock?
        switch options.openVsock() {
        case .success(let opened): vsock = opened
        case .failure(let message): return .failure(message)
        }
        let controlSocket: UnixListener?
        switch options.openControlSocket() {
        case .success(let opened): controlSocket = opened
        case .failure(let message): return .failure(message)
        }
        let boot: BootSource
        switch bootSource(options, netCommandLine: nets.first?.tap.guestCommandLine) {
        case .success(let source): boot = source
        case .failure(let message): return .failure(message)
        }
        var config = VMConfig(boot: boot,
                              memoryMiB: options.memory ?? (options.tiny != nil ? VMConfig.defaultTinyMemoryMiB : VMConfig.defaultLinuxMemoryMiB),
                              vcpus: options.vcpus,
                              timeoutNanoseconds: options.timeout > 0 ? Clock.nanoseconds(seconds: options.timeout) : nil)
        if isatty(0) == 1 { config.consoleInput = 0 }
        config.drives = drives
        config.nets = nets
        config.vsock = vsock
        config.controlSocket = controlSocket
        do {
            return .success(try Machine.build(config, console: console, processStart: processStart, kvmPath: options.kvmDevice))
        } catch {
            return .failure(Message(text: error.description))
        }
    }

    /// Brings back the snapshot `options.restore` names (`tandem vm restore`).
    static func restoreMachine(_ options: VMRunOptions, console: FileConsoleSink, processStart: UInt64?) -> Result<Machine, Message> {
        guard let directory = options.restore else { return .failure(Message(text: "no snapshot directory")) }
        let controlSocket: UnixListener?
        switch options.openControlSocket() {
        case .success(let opened): controlSocket = opened
        case .failure(let message): return .failure(message)
        }
        do {
            let machine = try Machine.restore(from: directory, console: console,
                                              timeoutNanoseconds: options.timeout > 0 ? Clock.nanoseconds(seconds: options.timeout) : nil,
                                              controlSocket: controlSocket, processStart: processStart, kvmPath: options.kvmDevice,
                                              openBridgeTap: { name, address in try VMRunOptions.reopenOnBridge(name: name, address: address) })
            if isatty(0) == 1 { machine.setConsoleInput(0) }
            return .success(machine)
        } catch {
            return .failure(Message(text: error.description))
        }
    }

    /// What to boot: a tiny guest, or Linux with its kernel, initramfs and command line.
    static func bootSource(_ options: VMRunOptions, netCommandLine: String? = nil) -> Result<BootSource, Message> {
        if let tiny = options.tiny {
            let resolved: (path: String, mode: CPUMode?)
            switch TinyGuests.resolve(tiny) {
            case .success(let found): resolved = found
            case .failure(let error): return .failure(Message(text: error.description))
            }
            switch readImage(resolved.path) {
            case .success(let image):
                if let builtFor = resolved.mode, let asked = options.mode, asked != builtFor {
                    return .failure(Message(text: "--mode \(asked.rawValue): the built-in guest '\(tiny)' is built for \(builtFor.rawValue) mode only "
                        + "(--mode is for a flat binary given by path)"))
                }
                let argument = options.arg ?? (tiny == "compute" ? TinyGuests.defaultComputeSize : 0)
                return .success(.flat(image: image, name: resolved.path, mode: options.mode ?? resolved.mode ?? .long, argument: argument))
            case .failure(let message): return .failure(message)
            }
        }
        guard let kernelPath = options.kernel ?? LinuxDefaults.guestKernel() else {
            return .failure(Message(text: "no kernel: pass --kernel PATH, or install Debian's linux-image-cloud-amd64 (make deps)"))
        }
        // Opened, not read: the loader copies them straight into guest RAM.
        let kernel: FileImage
        var initrd: FileImage?
        do {
            kernel = try FileImage(path: kernelPath, what: "kernel")
            if let initrdPath = options.initrd ?? LinuxDefaults.initramfs() { initrd = try FileImage(path: initrdPath, what: "initrd") }
        } catch {
            return .failure(Message(text: error.description))
        }
        var commandLine = options.cmdline ?? ""
        if let workload = options.workload { commandLine = "tandem.workload=\(workload) " + commandLine }
        if options.rootDisk != nil { commandLine = "tandem.root=/dev/vda " + commandLine }
        if let netCommandLine { commandLine = netCommandLine + " " + commandLine }
        return .success(.linux(kernel: kernel, initrd: initrd, commandLine: commandLine.trimmingTrailingSpaces()))
    }

    /// Reads the image, with the checks a user needs named: missing, a directory, empty.
    static func readImage(_ path: String, what: String = "guest image") -> Result<[UInt8], Message> {
        switch Files.kind(path) {
        case .missing: return .failure(Message(text: "\(what) \(path) does not exist"))
        case .directory: return .failure(Message(text: "\(what) \(path) is a directory, not a \(what == "guest image" ? "flat binary" : "file")"))
        // A FIFO would block the read for ever; /dev/zero would fill memory before failing.
        case .other: return .failure(Message(text: "\(what) \(path) is not a regular file (a FIFO, a device or a socket)"))
        case .regular: break
        }
        if let size = Files.size(path), size > VMConfig.maximumTinyMemoryMiB << 20 {
            return .failure(Message(text: "\(what) \(path) is \(size >> 20) MiB: more than a tiny guest's largest RAM (\(VMConfig.maximumTinyMemoryMiB) MiB) holds"))
        }
        do {
            let bytes = try Files.read(path, limit: VMConfig.maximumTinyMemoryMiB << 20)
            return bytes.isEmpty ? .failure(Message(text: "\(what) \(path) is empty")) : .success(bytes)
        } catch {
            return .failure(Message(text: "cannot read \(what): \(error)"))
        }
    }

    /// One line on stderr for outcomes a person must not miss.
    static func describe(_ outcome: RunOutcome) {
        switch outcome {
        case .exited, .halted, .reset: break
        case .timedOut(let nanoseconds):
            StandardError.line("tandem: guest stopped: it ran past --timeout \(Double(nanoseconds) / 1e9) s")
        case .interrupted(let signal):
            StandardError.line("tandem: guest stopped by signal \(signal)")
        case .crashed(let crash):
            StandardError.line("tandem: \(crash)")
        case .vmmFailed(let message):
            StandardError.line("tandem: error: VMM failed: \(message)")
        }
    }
}

/// Where a Linux guest's pieces are found when the command line does not say.
public enum LinuxDefaults {
    /// The newest Debian cloud kernel in /boot.
    public static func kernel() -> String? {
        guard let directory = opendir("/boot") else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix("vmlinuz-"), name.hasSuffix("-cloud-amd64") { names.append(name) }
        }
        return names.max().map { "/boot/" + $0 }
    }

    /// Tandem's microVM guest kernel, where `make kernel` built it.
    public static func microVMKernel() -> String? {
        TinyGuests.buildDirectory(named: "kernel").map { $0 + "/vmlinuz-tandem-microvm" }.flatMap { Files.kind($0) == .regular ? $0 : nil }
    }

    /// The kernel Tandem's own VMM boots when none is named: the microVM kernel where it is
    /// built, else the distro's cloud kernel. (Backends compared side by side, and L1 of the lab,
    /// keep the distro's: the same kernel in every column.)
    public static func guestKernel() -> String? { microVMKernel() ?? kernel() }

    /// The image `tandem image build` wrote.
    public static func initramfs() -> String? {
        TinyGuests.buildDirectory(named: "image").map { $0 + "/initramfs.cpio" }.flatMap { Files.kind($0) == .regular ? $0 : nil }
    }
}

extension String {
    func trimmingTrailingSpaces() -> String {
        var text = self
        while text.hasSuffix(" ") { text.removeLast() }
        return text
    }
}
