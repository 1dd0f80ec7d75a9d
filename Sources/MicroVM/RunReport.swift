import HostOS

/// How a VM run ended.
public enum RunOutcome: Equatable, Sendable {
    /// The guest wrote its status to the EXIT port.
    case exited(status: UInt8)
    /// The guest executed HLT (status 0) without writing EXIT.
    case halted
    /// A Linux guest rebooted or powered off (i8042 reset; a triple fault only when its command
    /// line says reboot=t: otherwise that is a crash) without
    /// writing EXIT: a clean end, status 0.
    case reset
    /// The guest ran past --timeout and was stopped.
    case timedOut(nanoseconds: UInt64)
    /// The host asked the VMM to stop (Ctrl-C is SIGINT).
    case interrupted(signal: Int32)
    /// The guest crashed the virtual CPU: triple fault, KVM internal error, failed entry.
    case crashed(CrashReport)
    /// The VMM itself failed while the guest ran (a KVM call failed).
    case vmmFailed(String)
}

/// A guest crash, named the way a person debugging it wants: which exit, where the guest was.
public struct CrashReport: Equatable, Sendable, CustomStringConvertible {
    public var exit: String
    public var vcpu: Int
    public var rip: UInt64?
    public var detail: String

    public var description: String {
        let location = rip.map { " at guest RIP 0x" + String($0, radix: 16) } ?? ""
        return "guest crashed: \(exit) on vCPU \(vcpu)\(location)" + (detail.isEmpty ? "" : " (\(detail))")
    }
}

/// Host CLOCK_MONOTONIC timestamps (ns) of each phase of a run; nil when the phase was not reached.
public struct PhaseTimes: Sendable {
    /// Taken by `tandem` as early as its main entry point runs.
    public var processStart: UInt64?
    public var vmCreated: UInt64?
    /// The guest may run: its kernel is in RAM (a Linux initrd's copy may still be finishing).
    public var imageLoaded: UInt64?
    /// Every image byte is in guest RAM: after first_run when a Linux initrd's copy was left to
    /// finish while the guest starts (`PendingCopy`), else the same as imageLoaded.
    public var imageComplete: UInt64?
    public var firstRun: UInt64?
    public var ready: UInt64?
    public var exit: UInt64?

    public init(processStart: UInt64? = nil) { self.processStart = processStart }
}

/// The exits at one port or MMIO page. (An array of these, not a Dictionary: a run's report is
/// made after the guest's exit and before its status, and a Dictionary's first use costs ~0.1 ms
/// of the Swift runtime's type lookups here.)
public struct ExitCount: Sendable, Equatable {
    public let key: UInt64
    public let count: UInt64

    public init(key: UInt64, count: UInt64) {
        self.key = key
        self.count = count
    }

    /// The counts of each key added up (each vCPU counts apart), most exits first, then by key.
    static func combined(_ counts: [ExitCount]) -> [ExitCount] {
        var added: [ExitCount] = []
        for entry in counts.sorted(by: { $0.key < $1.key }) {
            if let last = added.last, last.key == entry.key {
                added[added.count - 1] = ExitCount(key: entry.key, count: last.count + entry.count)
            } else {
                added.append(entry)
            }
        }
        return added.sorted { $0.count != $1.count ? $0.count > $1.count : $0.key < $1.key }
    }
}

/// Everything a VM run tells: outcome, phases, and what the guest did that no device answered.
public struct RunReport: Sendable {
    public var outcome: RunOutcome
    public var phases: PhaseTimes
    public var exits: UInt64 = 0
    /// The exits by cause (`exits_by_cause` in `--json`): port I/O by port, MMIO by 4 KiB page,
    /// HLT, and KVM_RUN interrupted by a signal (the VMM's kick); the rest ended the run.
    public var portExits: [ExitCount] = []
    public var mmioExits: [ExitCount] = []
    /// Port exits at ports past the first 256 distinct ones of a vCPU, and MMIO exits at pages
    /// past its first 1024 (not told apart).
    public var portExitsUntracked: UInt64 = 0
    public var mmioExitsUntracked: UInt64 = 0
    public var haltExits: UInt64 = 0
    public var interruptedExits: UInt64 = 0
    /// MMIO exits are counted per page: the address with these bits cleared.
    static let mmioPageMask: UInt64 = 0xfff
    public var unknownPortAccesses: UInt64 = 0
    public var unknownMMIOAccesses: UInt64 = 0
    public var firstUnknownPort: UInt16?
    public var firstUnknownMMIO: UInt64?
    public var consoleBytes: UInt64 = 0
    public var consoleTail: String = ""
    public var memoryMiB: Int
    public var vcpus: Int
    /// The VMM process's memory at the end of the run (peak RSS, anonymous and file-backed parts)
    /// and how much of it is guest RAM the guest touched: overhead = peak - guest RAM touched.
    public var memory = ResidentMemory()
    public var guestRAMTouchedBytes: UInt64 = 0
    /// The kernel a Linux guest booted (its path), nil for a tiny guest.
    public var kernel: String?
    /// The snapshot directory the VM was restored from (`tandem vm restore`), nil when it booted.
    public var restoredFrom: String?
    /// The virtio devices, as the run left them.
    public var devices: [DeviceReport] = []

    /// The process exit status this outcome maps to (see docs/exit-status.md).
    public var exitStatus: Int32 {
        switch outcome {
        case .exited(let status): Int32(status)
        case .halted, .reset: 0
        case .timedOut: ExitStatus.timedOut
        case .interrupted(let signal): 128 + signal
        case .crashed: ExitStatus.guestCrashed
        case .vmmFailed: ExitStatus.tandemError
        }
    }

    /// `{"port_io": {"0x3f8": N, ...}, "port_io_other_ports": N, "mmio": {"0xd0000000": N, ...}, "mmio_other_pages": N,
    /// "halt": N, "interrupted": N, "other": N}`, ports and pages by count, most first.
    var exitsByCause: JSON {
        func hex(_ counts: [ExitCount]) -> JSON {
            .object(counts.map { ("0x" + String($0.key, radix: 16), .uint($0.count)) })
        }
        func sum(_ counts: [ExitCount]) -> UInt64 { counts.reduce(0) { $0 + $1.count } }
        let counted = sum(portExits) + portExitsUntracked + sum(mmioExits) + mmioExitsUntracked
            + haltExits + interruptedExits
        return .object([("port_io", hex(portExits)), ("port_io_other_ports", .uint(portExitsUntracked)),
                        ("mmio", hex(mmioExits)), ("mmio_other_pages", .uint(mmioExitsUntracked)),
                        ("halt", .uint(haltExits)),
                        ("interrupted", .uint(interruptedExits)), ("other", .uint(exits > counted ? exits - counted : 0))])
    }

    public func json(hostMode: String?) -> JSON {
        func ms(_ time: UInt64?) -> JSON {
            guard let time, let start = phases.processStart ?? phases.vmCreated, time >= start else { return .null }
            return .double(Double(time - start) / 1e6)
        }
        func ns(_ time: UInt64?) -> JSON { time.map { .uint($0) } ?? .null }
        let outcomeJSON: JSON
        switch outcome {
        case .exited(let status): outcomeJSON = .object([("kind", .string("exited")), ("status", .int(Int64(status)))])
        case .halted: outcomeJSON = .object([("kind", .string("halted")), ("status", .int(0))])
        case .reset: outcomeJSON = .object([("kind", .string("reset")), ("status", .int(0))])
        case .timedOut(let ns): outcomeJSON = .object([("kind", .string("timed_out")), ("after_ms", .double(Double(ns) / 1e6))])
        case .interrupted(let signal): outcomeJSON = .object([("kind", .string("interrupted")), ("signal", .int(Int64(signal)))])
        case .crashed(let crash):
            outcomeJSON = .object([("kind", .string("crashed")), ("exit", .string(crash.exit)), ("vcpu", .int(Int64(crash.vcpu))),
                                   ("rip", crash.rip.map { .string("0x" + String($0, radix: 16)) } ?? .null),
                                   ("detail", .string(crash.detail))])
        case .vmmFailed(let message): outcomeJSON = .object([("kind", .string("vmm_failed")), ("message", .string(message))])
        }
        let phasesMS: JSON = .object([
            ("vm_created", ms(phases.vmCreated)), ("image_loaded", ms(phases.imageLoaded)), ("image_complete", ms(phases.imageComplete)),
            ("first_run", ms(phases.firstRun)), ("ready", ms(phases.ready)), ("exit", ms(phases.exit)),
        ])
        let monotonic: JSON = .object([
            ("process_start", ns(phases.processStart)), ("vm_created", ns(phases.vmCreated)),
            ("image_loaded", ns(phases.imageLoaded)), ("image_complete", ns(phases.imageComplete)), ("first_run", ns(phases.firstRun)),
            ("ready", ns(phases.ready)), ("exit", ns(phases.exit)),
        ])
        let overhead = memory.peak > guestRAMTouchedBytes ? memory.peak - guestRAMTouchedBytes : 0
        var members: [(String, JSON)] = [
            ("schema", .string("tandem.vm-run/1")),
            ("backend", .string("microvm")),
            ("virtualisation", hostMode.map { .string($0) } ?? .null),
            ("outcome", outcomeJSON),
            ("exit_status", .int(Int64(exitStatus))),
            ("memory_mib", .int(Int64(memoryMiB))),
            ("vcpus", .int(Int64(vcpus))),
            ("kernel", kernel.map { .string($0) } ?? .null),
            ("restored_from", restoredFrom.map { .string($0) } ?? .null),
            ("phases_ms", phasesMS),
            ("monotonic_ns", monotonic),
            ("exits", .uint(exits)),
            ("exits_by_cause", exitsByCause),
            ("unknown_port_accesses", .uint(unknownPortAccesses)),
            ("unknown_mmio_accesses", .uint(unknownMMIOAccesses)),
        ]
        members.append(("first_unknown_port", firstUnknownPort.map { .string("0x" + String($0, radix: 16)) } ?? .null))
        members.append(("first_unknown_mmio", firstUnknownMMIO.map { .string("0x" + String($0, radix: 16)) } ?? .null))
        members.append(("console_bytes", .uint(consoleBytes)))
        members.append(("peak_rss_bytes", .uint(memory.peak)))
        members.append(("rss_anon_bytes", .uint(memory.anonymous)))
        members.append(("rss_file_bytes", .uint(memory.file)))
        members.append(("guest_ram_touched_bytes", .uint(guestRAMTouchedBytes)))
        members.append(("vmm_overhead_bytes", .uint(overhead)))
        members.append(("devices", .array(devices.map(\.json))))
        members.append(("console_tail", .string(consoleTail)))
        return .object(members)
    }
}

/// One virtio device after the run: what it served and whether the guest's driver broke it.
public struct DeviceReport: Equatable, Sendable {
    /// As on the bus: "virtio-blk 0 (PATH)".
    public var name: String
    /// Requests completed (chains returned on a used ring).
    public var requests: UInt64
    /// Queue notifications that exited to the VMM instead of going through the queue's ioeventfd
    /// (0 when the wiring works: each would cost a vCPU exit).
    public var notifyExits: UInt64
    /// Why the device waits for a reset (DEVICE_NEEDS_RESET), or nil.
    public var failure: String?
    /// vsock: the streams the guest accepted or opened.
    public var connections: UInt64?

    public init(name: String, requests: UInt64, notifyExits: UInt64, failure: String?, connections: UInt64? = nil) {
        self.name = name
        self.requests = requests
        self.notifyExits = notifyExits
        self.failure = failure
        self.connections = connections
    }

    var json: JSON {
        .object([("name", .string(name)), ("requests", .uint(requests)), ("notify_exits", .uint(notifyExits)),
                 ("failure", failure.map { .string($0) } ?? .null)] + (connections.map { [("connections", .uint($0))] } ?? []))
    }
}

/// Tandem's own process exit statuses. A guest's status (0–255) passes through unchanged; these
/// follow the conventions of timeout(1) and `docker run`, so scripts can tell them apart.
public enum ExitStatus {
    /// The guest ran past --timeout (timeout(1) uses 124 too).
    public static let timedOut: Int32 = 124
    /// Tandem could not do what was asked: bad input, no KVM, a failed system call (docker's 125).
    public static let tandemError: Int32 = 125
    /// The guest crashed its virtual CPU (triple fault, KVM internal error, failed entry).
    public static let guestCrashed: Int32 = 126
}
