import Bench
import GuestImages
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The nested lab: hardware-style KVM on a host without VT-x/AMD-V (docs/linux-microvm.md).
///
/// L1 is the cloud kernel under QEMU in pure software mode (`-accel tcg -cpu EPYC`: an emulated
/// AMD CPU with SVM), booted from an initramfs Tandem assembles here: busybox, the kvm modules,
/// the `tandem` launcher, the L2 kernel and guest image, the lab's stopwatch (lab-time) and, with
/// `compareQEMU`, QEMU itself with its libraries and firmware. L1's /init loads kvm-amd and boots
/// L2 `runs` times with each VMM, interleaved, each boot timed by lab-time from spawn to the
/// ready marker and to exit. Host-side figures of L2 boots are not hardware figures: L1 runs
/// emulated, so the lab compares VMMs with each other, under the same conditions.
public enum NestedLab {
    /// One L2 boot, as lab-time reported it.
    public struct Boot: Sendable {
        public var vmm: String
        public var index: Int
        public var status: Int
        /// Spawn → ready marker line, ms (nil: the marker never came).
        public var readyMs: Double?
        public var exitMs: Double
        /// `tandem vm run --json`'s report of this boot (tandem only).
        public var report: String?
        /// The numbers the workload printed between the ready marker and its result line, as
        /// `WORD key=number` (blkio's `write_mib_s=...`): "WORD.key" → value.
        public var figures: [String: Double] = [:]
        /// With `net`: the sha256 and size of what L2 sent L1 during this boot (`LAB-NET`).
        public var netReceived: (sha256: String, bytes: Int)?
        /// The workload's result line (`TANDEM-RESULT ...`), where it printed one.
        public var result: String?
        /// With `snapshot`, on a `tandem-restore` boot: the control socket's answer to the snapshot
        /// it restored (`LAB-SNAPSHOT`: sizes and time).
        public var snapshot: String?
        /// With `vsock`: what L2 sent L1's host port 5001, and what it echoed to L1 (`LAB-VSOCK`).
        public var vsockReceived: (sha256: String, bytes: Int)?
        public var vsockEchoed: (sha256: String, bytes: Int)?
    }

    public struct Outcome: Sendable {
        public var boots: [Boot]
        /// L1 reached its end marker (every boot ran).
        public var completed: Bool
        public var l1Status: Int32
        public var interruptedBy: Int32?
        /// L2's kernel, and L1's.
        public var kernel: String
        public var l1Kernel: String = ""
        /// What L2 booted besides the kernel ("Tandem's guest image", or a user's image).
        public var l2: String = "Tandem's guest image"
        public var consoleTail: [String]
        /// Errors L1's init reported (module load failures and the like).
        public var errors: [String]
        /// Each drive's sha256 in L1 after the last boot (what L2 left on it), by index.
        public var driveHashes: [Int: String] = [:]
    }

    /// The ready marker tandem-init prints (docs/guest-abi.md).
    public static let readyMarker = "TANDEM-READY"
    /// What the L2 kernel is told under QEMU: Tandem's base line without its control ports.
    public static let qemuBaseCommandLine = GuestCommandLine.base(reboot: "k", pciOff: true)

    /// Assembles L1, boots it, and reports every line of its console to `line` as it comes.
    public static func run(_ options: LabOptions, line: (String) -> Void) throws(LabError) -> Outcome {
        try validate(options)
        let inputs = try LabInputs.discover(options)
        let image = try assemble(inputs, options)

        // One private directory for L1's initramfs, removed on every path.
        var template = Array("/tmp/tandem-lab.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw LabError("mkdtemp /tmp/tandem-lab.XXXXXX: \(String(cString: strerror(errno)))") }
        let directory = String(cString: made)
        defer { unlink(directory + "/l1.cpio"); rmdir(directory) }
        do { try Files.write(directory + "/l1.cpio", CpioWriter.archive(image)) } catch { throw LabError("cannot write L1's image: \(error)") }

        var boots: [Boot] = []
        var errors: [String] = []
        var tail: [String] = []
        var completed = false
        var buffer = LineBuffer()
        var lastReport: String?
        var lastResult: String?
        var lastSnapshot: String?
        var figures: [String: Double] = [:]
        var inWorkload = false
        var driveHashes: [Int: String] = [:]
        // The server mode's figures of the boot under way (`serve` in L1's init).
        var firstResponseNs: Double?
        var server: [String: Double] = [:]
        func take(_ clean: String) {
            if clean.contains("TCG doesn't support requested feature") { return }
            tail.append(clean)
            if tail.count > 40 { tail.removeFirst() }
            // The report may follow an unfinished console line: take it from where it starts.
            if let report = clean.fromFirst("{\"schema\":\"tandem.vm-run/") { lastReport = String(report) }
            if clean.hasPrefix("LAB-ERROR ") { errors.append(String(clean.dropFirst(10))) }
            // (Without its time: a restored run's result line must equal the cold boot's.)
            if let result = clean.fromFirst("TANDEM-RESULT ") { lastResult = result.split(separator: " ").filter { !$0.hasPrefix("ms=") }.joined(separator: " ") }
            if let snapshot = clean.fromFirst("LAB-SNAPSHOT ") {
                lastSnapshot = String(snapshot.dropFirst("LAB-SNAPSHOT ".count))
                // The restore that follows resumes inside the workload (its ready marker came before the snapshot).
                inWorkload = true
                figures = [:]
            }
            if clean == "LAB-DONE" { completed = true }
            // (A kernel message may share the marker's line on the console: a suffix still counts.)
            if let first = clean.fromFirst("LAB-FIRST-RESPONSE ") {
                firstResponseNs = first.split(separator: "=").last.flatMap { Double($0) }
            } else if let wrk = clean.fromFirst("WRK-RESULT ") {
                // Only while its boot runs: after a VMM that ended during the load, wrk reports
                // once the boot's LAB-TIME is in, and that load must not count for the next boot.
                if firstResponseNs != nil { server = parseServer(String(wrk)) }
            } else if options.loadSeconds != nil, let redis = RedisBenchmarkResult(clean) {
                if firstResponseNs != nil { server = parseServer(redis) }
            } else if clean.hasSuffix(readyMarker) { inWorkload = true; figures = [:] } else if clean.contains("TANDEM-RESULT ") { inWorkload = false }
            else if inWorkload, !clean.hasPrefix("LAB-"), !clean.contains("{\"schema\":") {
                // (The lab's own lines and the VMM's report are not the workload's: in the server
                // mode no result line ends the workload before them.)
                figures.merge(parseFigures(clean)) { $1 }
            }
            if clean.hasPrefix("LAB-DRIVE "), let (index, hash) = parseDrive(clean) { driveHashes[index] = hash }
            if clean.hasPrefix("LAB-NET "), !boots.isEmpty, let received = parseNet(clean) { boots[boots.count - 1].netReceived = received }
            if clean.hasPrefix("LAB-VSOCK "), !boots.isEmpty, let (received, echoed) = parseVsock(clean) {
                boots[boots.count - 1].vsockReceived = received
                boots[boots.count - 1].vsockEchoed = echoed
            }
            if clean.hasPrefix("LAB-TIME "), var boot = parseTime(clean) {
                boot.index = boots.filter { $0.vmm == boot.vmm }.count + 1
                if boot.vmm.hasPrefix("tandem") { boot.report = lastReport; lastReport = nil }
                boot.result = lastResult
                lastResult = nil
                if boot.vmm == "tandem-restore" { boot.snapshot = lastSnapshot; lastSnapshot = nil }
                boot.figures = figures
                if let first = firstResponseNs, let start = startNanoseconds(clean), first > start {
                    boot.figures["server.first_response_ms"] = (first - start) / 1e6
                    // `serve` stops the VMM only once the load tool is done, so its result comes
                    // before this line; without one here the VMM ended first (a guest that
                    // crashed left the tool with a dead server), or the tool printed nothing.
                    if server.isEmpty { boot.figures["server.ended_during_load"] = 1 } else { boot.figures.merge(server) { $1 } }
                }
                firstResponseNs = nil
                server = [:]
                figures = [:]
                inWorkload = false
                boots.append(boot)
            }
            line(clean)
        }
        let ending: Subprocess.Ending
        do {
            ending = try Subprocess.stream(Files.which("qemu-system-x86_64")!, l1Arguments(inputs, options, initrd: directory + "/l1.cpio"),
                                           timeoutSeconds: options.labTimeoutSeconds, silenceSeconds: options.silenceSeconds) { bytes in
                buffer.append(bytes).forEach(take)
            }
        } catch { throw LabError("cannot start L1: \(error)") }
        buffer.flush().forEach(take)
        if ending.silent { errors.append("L1's console was silent for \(Int(options.silenceSeconds)) s: stopped") }
        return Outcome(boots: boots, completed: completed, l1Status: ending.status, interruptedBy: ending.interruptedBy,
                       kernel: inputs.l2Kernel, l1Kernel: inputs.kernel, l2: options.l2Description, consoleTail: tail, errors: errors, driveHashes: driveHashes)
    }

    static func validate(_ options: LabOptions) throws(LabError) {
        guard options.runs >= 1, options.runs <= 1000 else { throw LabError("--runs \(options.runs): must be between 1 and 1000") }
        guard options.vcpus >= 1, options.vcpus <= 8 else {
            throw LabError("--vcpus \(options.vcpus): the lab gives L1 one emulated CPU per L2 vCPU, between 1 and 8")
        }
        guard options.memoryMiB >= 64, options.memoryMiB <= 8192 else {
            throw LabError("--memory \(options.memoryMiB): the lab boots L2 with 64 to 8192 MiB")
        }
        // (Empty only with a user's initramfs, which says itself what runs.)
        guard !options.workload.isEmpty || options.initramfs != nil,
              options.workload.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw LabError("--workload \(options.workload): a workload is a program name in the guest image's /bin")
        }
        for (name, text) in [("--cmdline", options.commandLine), ("--args", options.arguments ?? "")] where text.contains("'") || text.contains("\n") {
            throw LabError("\(name) \(text): quotes and newlines cannot pass through the lab's L1 shell")
        }
        if let seconds = options.loadSeconds {
            guard (1...3600).contains(seconds) else { throw LabError("--load \(seconds): from 1 to 3600 seconds") }
            guard options.net else { throw LabError("--load: needs --net (L1 reaches L2's server at \(LabOptions.l2Address))") }
            guard options.server != nil, (1...65535).contains(options.serverPort) else {
                throw LabError("--load: the server mode loads the http or redis workload (--workload http|redis [--args PORT]), not \(options.workload.isEmpty ? "an image's program" : options.workload)")
            }
            guard !options.vsock else { throw LabError("--load and --vsock: one peer per boot") }
        }
        if options.snapshot {
            guard options.loadSeconds == nil else { throw LabError("--snapshot and --load: the server mode loads cold boots only") }
            guard options.workload != "hello" else {
                throw LabError("--snapshot: hello ends within moments of its ready line, before it could be snapshotted; snapshot a workload that runs on (--workload compute, blkio, netio or vsockio)")
            }
        }
        guard options.drives.count <= 8 else { throw LabError("--drive: \(options.drives.count) drives, at most 8 (the VMM's virtio-mmio slots)") }
        for drive in options.drives {
            let path = LabOptions.drivePath(drive)
            guard !path.isEmpty, !path.contains(","), !drive.contains("'") else { throw LabError("--drive \(drive): must be PATH or PATH,ro") }
            switch Files.kind(path) {
            case .regular: break
            case .missing: throw LabError("--drive \(drive): \(path) does not exist")
            default: throw LabError("--drive \(drive): \(path) is not a regular file (a raw disk image)")
            }
        }
    }

    /// QEMU's arguments for L1 (see PLATFORM.md: TCG, an EPYC with SVM, one CPU per L2 vCPU,
    /// tsc_early_khz so L1's timer calibration does not hang under load). `loglevel=1`: L1's own
    /// kernel messages (kvm's "Unhandled WRMSR" warnings) must not cut into the lines the lab
    /// parses — with 2 CPUs in L1 they did.
    static func l1Arguments(_ inputs: LabInputs, _ options: LabOptions, initrd: String) -> [String] {
        // L1 holds L2's initramfs twice (its own initramfs's copy, and L2's RAM): a user's image can be large.
        let l2Image = (Files.size(inputs.image) ?? 0) >> 20
        let drive = options.drives.compactMap { Files.size(LabOptions.drivePath($0)) }.reduce(0, +) >> 20
        let memory = max(2048, options.memoryMiB + 1024 + 2 * l2Image + drive)
        // The server mode's client (wrk) runs in L1 beside the VMM: one more CPU for it.
        let cpus = options.vcpus + (options.loadSeconds == nil ? 0 : 1)
        return ["-M", "microvm", "-accel", "tcg", "-cpu", "EPYC", "-smp", String(cpus), "-m", "\(memory)M",
                "-nographic", "-no-reboot", "-kernel", inputs.kernel, "-initrd", initrd,
                "-append", "console=ttyS0 panic=-1 quiet loglevel=1 tsc_early_khz=\(HostClock.kilohertz() ?? 0)"]
    }

    /// A workload's figures: `WORD key=number ...` → ["WORD.key": number] (other words ignored).
    public static func parseFigures(_ line: String) -> [String: Double] {
        let words = line.split(separator: " ")
        guard let first = words.first, !first.contains("=") else { return [:] }
        var figures: [String: Double] = [:]
        for word in words.dropFirst() {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2, let value = Double(pair[1]), value.isFinite { figures["\(first).\(pair[0])"] = value }
        }
        return figures
    }

    /// wrk's `WRK-RESULT …` line as the boot's figures: server.requests_per_s, server.p50_us,
    /// server.p99_us, server.p999_us, server.errors.
    public static func parseServer(_ line: String) -> [String: Double] {
        let result = WRKResult(line)
        var figures: [String: Double] = [:]
        figures["server.requests_per_s"] = result.requestsPerSecond
        figures["server.p50_us"] = result.p50Us
        figures["server.p99_us"] = result.p99Us
        figures["server.p999_us"] = result.p999Us
        figures["server.errors"] = result.errors.map(Double.init)
        return figures
    }

    /// redis-benchmark's GET line as the boot's figures (no p99.9; errors are not counted by it).
    static func parseServer(_ result: RedisBenchmarkResult) -> [String: Double] {
        var figures = ["server.requests_per_s": result.requestsPerSecond, "server.errors": 0]
        figures["server.p50_us"] = result.p50Us
        figures["server.p99_us"] = result.p99Us
        return figures
    }

    /// `start_ns=` of a LAB-TIME line: lab-time's spawn, on the clock LAB-FIRST-RESPONSE uses.
    static func startNanoseconds(_ line: String) -> Double? {
        line.split(separator: " ").first { $0.hasPrefix("start_ns=") }.flatMap { Double($0.dropFirst("start_ns=".count)) }
    }

    /// `LAB-NET sha256=HEX bytes=N`.
    static func parseNet(_ line: String) -> (sha256: String, bytes: Int)? {
        let words = line.split(separator: " ")
        guard words.count == 3, words[1].hasPrefix("sha256="), words[1].count == 71, words[2].hasPrefix("bytes="),
              let bytes = Int(words[2].dropFirst(6)) else { return nil }
        return (String(words[1].dropFirst(7)), bytes)
    }

    /// `LAB-VSOCK received_sha256=HEX received_bytes=N echoed_sha256=HEX echoed_bytes=N`.
    static func parseVsock(_ line: String) -> ((sha256: String, bytes: Int), (sha256: String, bytes: Int))? {
        var fields: [String: String] = [:]
        for word in line.split(separator: " ").dropFirst() {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let received = fields["received_sha256"], received.count == 64, let receivedBytes = fields["received_bytes"].flatMap({ Int($0) }),
              let echoed = fields["echoed_sha256"], echoed.count == 64, let echoedBytes = fields["echoed_bytes"].flatMap({ Int($0) }) else { return nil }
        return ((received, receivedBytes), (echoed, echoedBytes))
    }

    /// `LAB-DRIVE N sha256=HEX`.
    static func parseDrive(_ line: String) -> (Int, String)? {
        let words = line.split(separator: " ")
        guard words.count == 3, let index = Int(words[1]), words[2].hasPrefix("sha256="), words[2].count == 71 else { return nil }
        return (index, String(words[2].dropFirst(7)))
    }

    /// `LAB-TIME label=L status=N ready_ms=R exit_ms=E`.
    public static func parseTime(_ line: String) -> Boot? {
        var fields: [String: String] = [:]
        for word in line.split(separator: " ").dropFirst() {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[String(pair[0])] = String(pair[1]) }
        }
        guard let vmm = fields["label"], let status = fields["status"].flatMap({ Int($0) }),
              let ready = fields["ready_ms"].flatMap({ Double($0) }), let exit = fields["exit_ms"].flatMap({ Double($0) }) else { return nil }
        return Boot(vmm: vmm, index: 0, status: status, readyMs: ready < 0 ? nil : ready, exitMs: exit, report: nil)
    }
}
