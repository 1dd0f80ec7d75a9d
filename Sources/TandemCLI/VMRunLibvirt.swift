import Containers
import HostFacts
import HostOS
import Libvirt
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm run --backend libvirt`: the same kernel, image and workload as a libvirt guest.
enum VMRunLibvirt {
    /// The exit status for a libvirt or QEMU guest's outcome (docs/exit-status.md), said on stderr
    /// unless the guest exited by itself: `ended` says what became of the VM; a guest that never
    /// got ready or gave no result has its last console lines shown.
    static func exitStatus(_ outcome: LibvirtRun.Outcome, timeout: Double, ended: String, ready: Bool, consoleTail: [String]) -> Int32 {
        let tail = consoleTail.map { "  | \($0)\n" }.joined()
        switch outcome {
        case .exited(let code): return code
        case .timedOut:
            StandardError.line("tandem: guest stopped: it ran past --timeout \(timeout) s (\(ended))" + (ready ? "" : "; it never printed the ready marker. Its last console lines:"))
            if !ready { StandardError.write(tail) }
            return 124
        case .interrupted(let signal):
            StandardError.line("tandem: guest stopped by signal \(signal) (\(ended))")
            return 128 + signal
        case .endedWithoutResult:
            StandardError.line("tandem: guest ended without tandem-init's result line; its last console lines:")
            StandardError.write(tail)
            return 126
        }
    }

    /// A guest's outcome as the report's `outcome` object: the same as Tandem's VMM writes
    /// (docs/exit-status.md), for libvirt and QEMU alike.
    static func outcomeJSON(_ outcome: LibvirtRun.Outcome, timeout: Double) -> JSON {
        switch outcome {
        case .exited(let code): .object([("kind", .string("exited")), ("status", .int(Int64(code)))])
        case .timedOut: .object([("kind", .string("timed_out")), ("after_ms", .double(timeout * 1000))])
        case .interrupted(let signal): .object([("kind", .string("interrupted")), ("signal", .int(Int64(signal)))])
        case .endedWithoutResult: .object([("kind", .string("crashed")), ("reason", .string("the guest ended without tandem-init's result line"))])
        }
    }

    static func run(_ command: VMRunCommand) -> Int32 {
        guard command.tiny == nil else { return VMRunner.fail("--tiny guests run only on Tandem's own VMM (--backend microvm)") }
        guard command.drive.isEmpty, command.rootDisk == nil, command.vsock == nil, command.apiSock == nil else {
            return VMRunner.fail("--drive, --root-disk, --vsock and --api-sock are Tandem's VMM's (--backend microvm); a libvirt guest boots from a root disk with --disk")
        }
        guard command.net.isEmpty || command.net == ["bridge"] else {
            return VMRunner.fail("--net \(command.net.joined(separator: " --net ")): a libvirt guest takes one --net bridge (virtio-net on Tandem's bridge); tap is Tandem's VMM's (--backend microvm)")
        }
        let bridged = command.net == ["bridge"]
        guard !bridged || getuid() == 0 else { return VMRunner.fail("--net bridge: needs root (the bridge is the host's)") }
        guard !bridged || command.connect.hasPrefix("qemu:///") else {
            return VMRunner.fail("--net bridge with --connect \(command.connect): Tandem's bridge is on this host, the guest would be on another")
        }
        let guest: LinuxGuest
        switch LinuxGuest.check(command) {
        case .success(let checked): guest = checked
        case .failure(let message): return VMRunner.fail(message.text)
        }
        let kernel = guest.kernel, memory = guest.memoryMiB

        // The accelerator: kvm only where the host has hardware virtualisation; said and stamped.
        let hostMode = HostFacts.probeKVMMode(kvmPath: command.kvmDevice)
        let accelerator: DomainDefinition.Accelerator
        switch command.accel {
        case "auto": accelerator = hostMode == .hardware ? .kvm : .qemu
        case "kvm":
            // Only where this host is the one that runs the guest; a remote URI's host is its own.
            let local = command.connect.hasPrefix("qemu:///")
            guard !local || hostMode == .hardware else {
                return VMRunner.fail("--accel kvm: this host's virtualisation is \(hostMode.rawValue) (\(hostMode.explanation)); "
                    + "QEMU's KVM accelerator needs VT-x/AMD-V: use --accel tcg or auto")
            }
            accelerator = .kvm
        case "tcg": accelerator = .qemu
        default: return VMRunner.fail("--accel \(command.accel): must be auto, kvm or tcg")
        }
        let machineName = command.machine ?? (command.disk ? "pc" : "microvm")
        guard let machine = DomainDefinition.Machine(rawValue: machineName) else {
            return VMRunner.fail("--machine \(machineName): must be \(DomainDefinition.Machine.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        StandardError.line("tandem: libvirt guest (\(command.connect)), machine \(machine.rawValue), accelerator "
            + (accelerator == .kvm ? "kvm (hardware virtualisation)" : "tcg (domain type='qemu': QEMU emulates the guest's instructions\(hostMode == .hardware ? "" : "; this host has no hardware virtualisation"))"))

        let initrd = guest.initrd
        var line = command.cmdline ?? ""
        if let workload = command.workload { line = "tandem.workload=\(workload)" + (line.isEmpty ? "" : " " + line) }
        // Under TCG the kernel's early TSC calibration can hang (PLATFORM.md): tell it the clock.
        if accelerator == .qemu, let clock = GuestCommandLine.emulatedClock() { line = clock + (line.isEmpty ? "" : " " + line) }
        var options = LibvirtRun.Options(accelerator: accelerator, kernel: kernel, initrd: initrd, commandLine: line)
        options.uri = command.connect
        options.machine = machine
        options.memoryMiB = memory
        options.vcpus = command.vcpus
        options.timeoutSeconds = command.timeout
        options.keep = command.keep
        if command.disk || bridged {
            let directory: String
            do { directory = try LibvirtRun.makeDirectory() } catch { return VMRunner.fail(error.description) }
            options.directory = directory
            if command.disk {
                do {
                    let prepared = try DiskGuest.prepare(kernel: kernel, directory: directory)
                    options.disk = prepared.disk
                    options.initrd = prepared.initramfs
                } catch {
                    Files.removeTree(directory)
                    return VMRunner.fail(error.description)
                }
            }
        }
        // A killed run's lease goes once its directory has (swept by makeDirectory, or here when
        // this run made none yet), the bridge with the last lease; its domain goes in
        // LibvirtRun's own sweep.
        if getuid() == 0 {
            if options.directory == nil { LibvirtRun.sweepDirectories() }
            BridgeNetwork.sweepStale()
        }
        // --net bridge: an address on tandembr0, held while the run's directory exists (a killed
        // run's lease is stale once the next run sweeps that directory), ended after the domain.
        let leaseID = "vm" + String(UInt64(getpid()) << 24 ^ Clock.monotonicNanoseconds() & 0xff_ffff, radix: 16)
        var lease: BridgeNetwork.Lease?
        defer { if lease != nil { BridgeNetwork.release(id: leaseID) } }
        if bridged, let directory = options.directory {
            do { lease = try BridgeNetwork.lease(for: leaseID, stateDirectory: directory) } catch {
                Files.removeTree(directory)
                return VMRunner.fail(error.description)
            }
            if let lease {
                BridgeNetwork.prepareGuest(lease)
                options.network = .init(bridge: BridgeNetwork.bridge, mac: BridgeNetwork.guestMAC(for: lease.address))
                options.commandLine += (options.commandLine.isEmpty ? "" : " ") + BridgeNetwork.guestCommandLine(lease)
                StandardError.line("tandem: --net bridge: the guest is \(lease.address) on \(BridgeNetwork.bridge) (MAC \(BridgeNetwork.guestMAC(for: lease.address)))")
            }
        }

        let consoleFD: Int32 = command.json ? 2 : 1
        let report: LibvirtRun.Report
        do {
            report = try LibvirtRun.run(options) { bytes in _ = write(consoleFD, bytes.baseAddress, bytes.count) }
        } catch {
            return VMRunner.fail(error.description)
        }
        let status = exitStatus(report.outcome, timeout: command.timeout, ended: "domain \(report.domainName) destroyed", ready: report.ready != nil,
                                consoleTail: report.consoleTail.split(separator: "\n").suffix(8).map(String.init))
        if command.json {
            func ms(_ value: UInt64?) -> JSON { value.map { .double(Double($0 - report.createStart) / 1e6) } ?? .null }
            let outcome = outcomeJSON(report.outcome, timeout: command.timeout)
            let json: JSON = .object([
                ("schema", .string("tandem.vm-run/1")),
                ("backend", .string("libvirt")),
                ("virtualisation", .string(hostMode.rawValue)),
                ("accelerator", .string(accelerator == .kvm ? "kvm" : "tcg")),
                ("machine", .string(machine.rawValue)),
                ("uri", .string(command.connect)),
                ("domain", .string(report.domainName)),
                ("exit_status", .int(Int64(status))),
                ("outcome", outcome),
                ("memory_mib", .int(Int64(memory))),
                ("vcpus", .int(Int64(command.vcpus))),
                ("phases_ms", .object([("created", ms(report.created)), ("ready", ms(report.ready)), ("exit", ms(report.ended))])),
                ("monotonic_ns", .object([("create_start", .uint(report.createStart)), ("ready", report.ready.map { .uint($0) } ?? .null),
                                          ("exit", .uint(report.ended))])),
                ("qemu_peak_rss_bytes", report.qemuPeakRSSBytes.map { .uint($0) } ?? .null),
                ("guest_cpu_ns", report.guestCPUNanoseconds.map { .uint($0) } ?? .null),
            ])
            StandardOutput.write(json.serialized() + "\n")
        }
        return status
    }
}

