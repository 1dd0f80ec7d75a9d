import Bench
import CLinux
import Containers
import HostFacts
import HostOS
import Libvirt
import MicroVM
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm run --backend qemu`: the same kernel, image and workload in QEMU's microvm machine,
/// run directly (no libvirt daemon), as the benchmark's `qemu-microvm` peer runs it (one command
/// line: `QEMUMicroVMCommand`). QEMU is our child and dies with us (`clinux_spawn_tied`, also
/// after SIGKILL); its console (stdio) is streamed through us, which read tandem-init's ready
/// marker and result line from it. `--net bridge`: a tap on Tandem's bridge with a leased address,
/// made exactly as for Tandem's VMM, handed to QEMU as its descriptor 3 (`-netdev tap,fd=3`).
enum VMRunQEMU {
    static func run(_ command: VMRunCommand) -> Int32 {
        guard command.tiny == nil else { return VMRunner.fail("--tiny guests run only on Tandem's own VMM (--backend microvm)") }
        guard command.drive.isEmpty, command.rootDisk == nil, command.vsock == nil, command.apiSock == nil, !command.disk, command.machine == nil, !command.keep else {
            return VMRunner.fail("--backend qemu boots the kernel and initramfs in QEMU's microvm machine: --drive, --root-disk, --vsock, --api-sock are Tandem's VMM's; --disk, --machine, --keep libvirt's")
        }
        guard command.net.isEmpty || command.net == ["bridge"] else {
            return VMRunner.fail("--net \(command.net.joined(separator: " --net ")): a QEMU guest takes one --net bridge (virtio-net on Tandem's bridge); tap is Tandem's VMM's (--backend microvm)")
        }
        guard let qemu = Files.which("qemu-system-x86_64") else {
            return VMRunner.fail("--backend qemu: qemu-system-x86_64 is not installed (Debian's qemu-system-x86: make deps)")
        }
        let guest: LinuxGuest
        switch LinuxGuest.check(command) {
        case .success(let checked): guest = checked
        case .failure(let message): return VMRunner.fail(message.text)
        }
        let hostMode = HostFacts.probeKVMMode(kvmPath: command.kvmDevice)
        let kvm: Bool
        switch command.accel {
        case "auto": kvm = hostMode == .hardware
        case "kvm":
            guard hostMode == .hardware else {
                return VMRunner.fail("--accel kvm: this host's virtualisation is \(hostMode.rawValue) (\(hostMode.explanation)); QEMU's KVM accelerator needs VT-x/AMD-V: use --accel tcg or auto")
            }
            kvm = true
        case "tcg": kvm = false
        default: return VMRunner.fail("--accel \(command.accel): must be auto, kvm or tcg")
        }
        StandardError.line("tandem: QEMU microvm, accelerator " + (kvm ? "kvm (hardware virtualisation)"
            : "tcg (QEMU emulates the guest's instructions\(hostMode == .hardware ? "" : "; this host has no hardware virtualisation"))"))

        var line = command.cmdline ?? ""
        if let workload = command.workload { line = "tandem.workload=\(workload)" + (line.isEmpty ? "" : " " + line) }
        var arguments = QEMUMicroVMCommand.arguments(qemu: qemu, kvm: kvm, kernel: guest.kernel, initrd: guest.initrd, commandLine: line,
                                                     memoryMiB: guest.memoryMiB, vcpus: command.vcpus)
        // Stop signals through a signalfd from here on (QEMU starts with them unblocked).
        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }
        let signals: SignalFD
        do { signals = try SignalFD([SIGINT, SIGTERM, SIGHUP]) } catch { return VMRunner.fail(error.description) }
        var net: VMConfig.Net?
        if command.net == ["bridge"] {
            switch VMRunOptions.openOnBridge() {
            case .success(let opened): net = opened
            case .failure(let message): return VMRunner.fail(message.text)
            }
        }
        if let net {
            let mac = net.mac.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined(separator: ":")
            arguments += ["-netdev", "tap,id=net0,fd=3", "-device", "virtio-net-device,netdev=net0,mac=\(mac)"]
            if let address = net.tap.guestCommandLine, let append = arguments.lastIndex(of: "-append") {
                arguments[append + 1] += " " + address
            }
        }
        let run: Run
        switch supervise(arguments, tap: net?.tap.fd.rawValue ?? -1, timeout: command.timeout, signals: signals, consoleFD: command.json ? 2 : 1) {
        case .success(let done): run = done
        case .failure(let message): return VMRunner.fail(message.text)
        }
        let status = VMRunLibvirt.exitStatus(run.outcome, timeout: command.timeout, ended: "QEMU ended", ready: run.ready != nil, consoleTail: run.consoleTail)
        if command.json {
            func ms(_ value: UInt64?) -> JSON { value.map { .double(Double($0 - run.spawned) / 1e6) } ?? .null }
            let json: JSON = .object([
                ("schema", .string("tandem.vm-run/1")),
                ("backend", .string("qemu")),
                ("virtualisation", .string(hostMode.rawValue)),
                ("accelerator", .string(kvm ? "kvm" : "tcg")),
                ("machine", .string("microvm")),
                ("exit_status", .int(Int64(status))),
                ("outcome", VMRunLibvirt.outcomeJSON(run.outcome, timeout: command.timeout)),
                ("memory_mib", .int(Int64(guest.memoryMiB))),
                ("vcpus", .int(Int64(command.vcpus))),
                ("phases_ms", .object([("ready", ms(run.ready)), ("exit", ms(run.ended))])),
                ("monotonic_ns", .object([("spawn", .uint(run.spawned)), ("ready", run.ready.map { .uint($0) } ?? .null), ("exit", .uint(run.ended))])),
                ("qemu_peak_rss_bytes", run.peakRSSBytes.map { .uint($0) } ?? .null),
                ("qemu_cpu_ns", run.cpuNanoseconds.map { .uint($0) } ?? .null),
            ])
            StandardOutput.write(json.serialized() + "\n")
        }
        return status
    }

    /// What a run came to, and when (CLOCK_MONOTONIC): QEMU spawned, the ready marker, its end.
    struct Run {
        var outcome: LibvirtRun.Outcome
        var spawned: UInt64
        var ready: UInt64?
        var ended: UInt64
        /// QEMU's peak resident set (VmHWM, sampled while it ran) and its CPU time (utime + stime).
        var peakRSSBytes: UInt64?
        var cpuNanoseconds: UInt64?
        var consoleTail: [String]
    }

    /// Runs QEMU, streams its console to `consoleFD`, and ends it: after tandem-init's result line
    /// (the guest's status; QEMU exits as the guest powers off, or is killed 10 s later), at
    /// --timeout or on a signal, SIGTERM first (QEMU's clean exit), SIGKILL 5 s later.
    static func supervise(_ arguments: [String], tap: Int32, timeout: Double, signals: SignalFD, consoleFD: Int32) -> Result<Run, VMRunner.Message> {
        var ends: [Int32] = [0, 0]
        guard clinux_pipe_cloexec(&ends) == 0 else { return .failure(.init(text: SystemError("pipe2", "QEMU's console").description)) }
        let reader = FileDescriptor(adopting: ends[0], label: "QEMU's console")
        var writer: FileDescriptor? = FileDescriptor(adopting: ends[1], label: "QEMU's console")
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let spawned = Clock.monotonicNanoseconds()
        let pid = clinux_spawn_tied(arguments[0], argv, environ, writer!.rawValue, tap)
        guard pid > 0 else { return .failure(.init(text: SystemError("exec", arguments[0], errno: -pid).description)) }
        writer = nil
        let deadline = timeout > 0 ? spawned &+ Clock.nanoseconds(seconds: timeout) : UInt64.max
        var lines = LineBuffer()
        var run = Run(outcome: .endedWithoutResult, spawned: spawned, ready: nil, ended: 0, consoleTail: [])
        var decided: LibvirtRun.Outcome?
        var stopAt = UInt64.max
        var buffer = [UInt8](repeating: 0, count: 65536)
        func sample() {
            if let peak = ProcessInfoLite.peakRSS(pid) { run.peakRSSBytes = max(run.peakRSSBytes ?? 0, peak) }
            if let cpu = ProcessInfoLite.cpuNanoseconds(pid) { run.cpuNanoseconds = cpu }
        }
        var open = true
        while open {
            var fds = [pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0), pollfd(fd: signals.fd.rawValue, events: Int16(POLLIN), revents: 0)]
            let now = Clock.monotonicNanoseconds()
            let wake = min(deadline, stopAt)
            let wait = wake == .max ? 1000 : Int32(min(1000, (wake > now ? wake - now : 0) / 1_000_000 + 1))
            _ = poll(&fds, 2, wait)
            sample()
            if fds[0].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
                if count <= 0 { open = false } else {
                    buffer.withUnsafeBytes { _ = write(consoleFD, $0.baseAddress, count) }
                    for text in lines.append(buffer[0..<count]) {
                        run.consoleTail = Array((run.consoleTail + [text]).suffix(8))
                        if run.ready == nil, text.hasPrefix("TANDEM-READY") { run.ready = Clock.monotonicNanoseconds() }
                        if decided == nil, text.hasPrefix("TANDEM-RESULT "),
                           let value = text.split(separator: " ").first(where: { $0.hasPrefix("status=") }).flatMap({ Int32($0.dropFirst(7)) }) {
                            decided = .exited(status: value)
                            stopAt = Clock.monotonicNanoseconds() + 10_000_000_000
                        }
                    }
                }
            }
            if fds[1].revents != 0, let signal = signals.next(), decided == nil {
                decided = .interrupted(signal: signal)
                kill(pid, SIGTERM)
                stopAt = Clock.monotonicNanoseconds() + 5_000_000_000
            }
            let later = Clock.monotonicNanoseconds()
            if decided == nil, later >= deadline {
                decided = .timedOut
                kill(pid, SIGTERM)
                stopAt = later + 5_000_000_000
            }
            if later >= stopAt { kill(pid, SIGKILL) }
        }
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
        run.ended = Clock.monotonicNanoseconds()
        run.outcome = decided ?? .endedWithoutResult
        return .success(run)
    }
}
