import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// One guest run through libvirt: the same kernel, initramfs and tandem-init as the microVM, as a
/// transient domain Tandem names `tandem-…` and marks with its owner. The serial console goes to
/// a file Tandem tails (streamed to the user, the ready marker and result line read from it).
/// Every way out — guest exit, crash, timeout, Ctrl-C — destroys the domain and removes the
/// console file; a domain whose tandem was killed is destroyed by the next run (`sweep`).
public struct LibvirtRun {
    public struct Options: Sendable {
        public var uri = "qemu:///system"
        public var accelerator: DomainDefinition.Accelerator
        public var machine = DomainDefinition.Machine.microvm
        public var kernel: String
        public var initrd: String?
        public var commandLine: String
        public var memoryMiB = 256
        public var vcpus = 1
        public var timeoutSeconds: Double = 0
        public var keep = false
        /// Boot from this ext4 image (virtio-blk, vda) instead of the initramfs alone.
        public var disk: String?
        /// The disk's format (a raw ext4 image, or a qcow2 overlay on one).
        public var diskFormat = DomainDefinition.DiskFormat.raw
        /// Where the console file goes (a directory the QEMU user can traverse).
        public var directory: String?
        /// A virtio-net interface on a host bridge (`tandem vm run --net bridge`).
        public var network: DomainDefinition.BridgedInterface?
        public init(accelerator: DomainDefinition.Accelerator, kernel: String, initrd: String?, commandLine: String) {
            self.accelerator = accelerator
            self.kernel = kernel
            self.initrd = initrd
            self.commandLine = commandLine
        }
    }

    public enum Outcome: Equatable, Sendable {
        case exited(status: Int32)
        /// The domain stopped without tandem-init's result line (a panic, a crash).
        case endedWithoutResult
        case timedOut
        case interrupted(signal: Int32)
    }

    public struct Report: Sendable {
        public var outcome: Outcome
        public var domainName: String
        /// CLOCK_MONOTONIC: before virDomainCreateXML, when it returned, ready marker, end.
        public var createStart: UInt64
        public var created: UInt64
        public var ready: UInt64?
        public var ended: UInt64
        /// Peak resident set of the QEMU process (VmHWM), sampled while it runs and at the result line.
        public var qemuPeakRSSBytes: UInt64?
        public var guestCPUNanoseconds: UInt64?
        public var consoleTail: String
    }

    /// The base command line for a libvirt guest: the microVM's, without its control ports
    /// (QEMU has none), and `reboot=t`/`panic=-1` so a reboot or panic ends the domain. `pci=off`
    /// only on microvm (it has no PCI bus; pc and q35 put virtio devices on PCI).
    public static func baseCommandLine(machine: DomainDefinition.Machine) -> String {
        GuestCommandLine.base(reboot: "t", pciOff: machine == .microvm)
    }

    /// Runs the guest, streaming its console to `console`. A directory given in `options` is
    /// removed afterwards (unless `keep`) whatever happens, a failed connection included.
    public static func run(_ options: Options, console: (UnsafeRawBufferPointer) -> Void) throws(LibvirtError) -> Report {
        var given = options.directory
        defer { if let given, !options.keep { Files.removeTree(given) } }
        for path in [options.kernel] + (options.initrd.map { [$0] } ?? []) where access(path, R_OK) != 0 {
            throw LibvirtError("cannot read \(path)")
        }
        let connection = try LibvirtConnection(uri: options.uri)
        given = nil  // from here on the directory's own cleanup below has it
        sweep(connection)

        var blocked = BlockedSignals([SIGINT, SIGTERM, SIGHUP])
        defer { blocked.restore() }
        let signals: SignalFD
        do { signals = try SignalFD([SIGINT, SIGTERM, SIGHUP]) } catch { throw LibvirtError(error.description) }

        // The console file's directory: traversable by the QEMU user, removed afterwards.
        let directory: String
        if let given = options.directory { directory = given } else { directory = try makeDirectory() }
        let consoleFile = directory + "/console.log"
        defer {
            // Kept: the user's from now on (no owner, so no later run sweeps it).
            if options.keep { unlink(directory + "/" + ownerFile) } else { Files.removeTree(directory) }
        }

        let suffix = String(UInt64(getpid()) << 20 ^ Clock.monotonicNanoseconds() & 0xfffff, radix: 16)
        var definition = DomainDefinition(
            name: DomainDefinition.namePrefix + suffix, accelerator: options.accelerator, machine: options.machine,
            memoryMiB: options.memoryMiB, vcpus: options.vcpus, kernel: options.kernel, initrd: options.initrd,
            commandLine: baseCommandLine(machine: options.machine) + (options.disk == nil ? "" : " tandem.root=/dev/vda")
                + (options.commandLine.isEmpty ? "" : " " + options.commandLine),
            consoleFile: consoleFile, disk: options.disk, owner: .init(pid: getpid(), startTime: ownStartTime()))
        definition.diskFormat = options.diskFormat
        definition.network = options.network

        let createStart = Clock.monotonicNanoseconds()
        let domain = try connection.createTransient(definition.xml)
        let created = Clock.monotonicNanoseconds()
        defer { if domain.isActive { try? domain.destroy() } }

        var tail = ConsoleTail()
        var offset = 0
        var outcome: Outcome?
        var ready: UInt64?
        var qemuPeak: UInt64?
        var cpu: UInt64?
        let (end, overflow) = createStart.addingReportingOverflow(Clock.nanoseconds(seconds: options.timeoutSeconds))
        let deadline = options.timeoutSeconds > 0 && !overflow ? end : UInt64.max
        // QEMU's pid, from the file libvirt writes (read again at the result line if it was not
        // there yet: under load the daemon may write it after create returns).
        func readQEMUPID() -> pid_t? { Files.readText("/run/libvirt/qemu/\(definition.name).pid").flatMap { pid_t($0.split(separator: "\n").first ?? "") } }
        var qemuPID = readQEMUPID()
        // VmHWM only grows: sampled on every turn of the loop as well as at the result line, so a
        // QEMU that is gone by the time a loaded host reads that line still has a figure.
        func samplePeak() {
            if qemuPID == nil { qemuPID = readQEMUPID() }
            if let qemuPID, let peak = ProcessInfoLite.peakRSS(qemuPID) { qemuPeak = max(qemuPeak ?? 0, peak) }
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while outcome == nil {
            // New console bytes (the file grows as the guest writes).
            if let fd = try? FileDescriptor.open(consoleFile, O_RDONLY) {
                while true {
                    let count = buffer.withUnsafeMutableBytes { pread(fd.rawValue, $0.baseAddress, $0.count, off_t(offset)) }
                    guard count > 0 else { break }
                    offset += count
                    buffer.withUnsafeBytes { console(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    for line in tail.append(buffer[0..<count]) {
                        if ready == nil, line.hasPrefix("TANDEM-READY") { ready = Clock.monotonicNanoseconds() }
                        if line.hasPrefix("TANDEM-RESULT "), let status = resultStatus(line) {
                            samplePeak()
                            cpu = domain.info()?.cpuTimeNanoseconds
                            outcome = .exited(status: status)
                        }
                    }
                }
            }
            if outcome != nil { break }
            samplePeak()
            if !domain.isActive { outcome = .endedWithoutResult; break }
            if Clock.monotonicNanoseconds() >= deadline { outcome = .timedOut; break }
            var fds = [pollfd(fd: signals.fd.rawValue, events: Int16(POLLIN), revents: 0)]
            if poll(&fds, 1, 5) > 0, let signal = signals.next() { outcome = .interrupted(signal: signal) }
        }
        // After the result line the guest powers off by itself; wait for that briefly, then pull the plug.
        if case .exited = outcome! {
            let stop = Clock.monotonicNanoseconds() + 10_000_000_000
            while domain.isActive, Clock.monotonicNanoseconds() < stop { usleep(2_000) }
        }
        if domain.isActive { try? domain.destroy() }
        return Report(outcome: outcome!, domainName: definition.name, createStart: createStart, created: created, ready: ready,
                      ended: Clock.monotonicNanoseconds(), qemuPeakRSSBytes: qemuPeak, guestCPUNanoseconds: cpu,
                      consoleTail: tail.text)
    }

    /// A private directory for a run's files (console, disk), traversable by the QEMU user.
    public static func makeDirectory() throws(LibvirtError) -> String {
        sweepDirectories()
        var template = Array("\(directoryPrefix)XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw LibvirtError(SystemError("mkdtemp", "\(directoryPrefix)XXXXXX").description) }
        let directory = String(cString: made)
        chmod(directory, 0o711)
        // Who made it: a run killed before its cleanup leaves it to the next run's sweep.
        try? Files.write(directory + "/" + ownerFile, Array("\(getpid()) \(ownStartTime())\n".utf8), mode: 0o600)
        return directory
    }

    static let directoryPrefix = "/tmp/tandem-libvirt."
    static let ownerFile = "owner"

    /// Removes run directories whose owner (pid and start time, in `owner`) is gone: a run
    /// SIGKILLed before it could remove its own. One without an owner file — kept with `--keep`,
    /// whose run gives it up at the end — is the user's and stays.
    public static func sweepDirectories() {
        for name in Files.list("/tmp") where name.hasPrefix(String(directoryPrefix.dropFirst("/tmp/".count))) {
            let directory = "/tmp/" + name
            guard let owner = Files.readText(directory + "/" + ownerFile)?.split(separator: " "), owner.count == 2,
                  let pid = pid_t(owner[0]), let start = UInt64(owner[1].filter(\.isNumber)) else { continue }
            if ProcessInfoLite.startTime(pid) != start { Files.removeTree(directory) }
        }
    }

    /// Destroys Tandem's domains whose owning tandem is gone (killed before it could clean up).
    /// Domains without Tandem's name prefix and owner mark are never touched.
    public static func sweep(_ connection: LibvirtConnection) {
        for domain in connection.domains() where domain.name.hasPrefix(DomainDefinition.namePrefix) {
            guard let owner = domain.metadata(namespace: DomainDefinition.metadataNamespace),
                  let pid = attributeValue("pid", in: owner).flatMap({ pid_t($0) }),
                  let start = attributeValue("start", in: owner).flatMap({ UInt64($0) }) else { continue }
            if ProcessInfoLite.startTime(pid) == start { continue }
            if domain.isActive { try? domain.destroy() }
            if domain.isPersistent { domain.undefine() }
        }
    }

    /// The value of ` name='…'` (or "…") in one XML element's text.
    static func attributeValue(_ name: String, in element: String) -> String? {
        let characters = Array(element)
        let key = Array(" \(name)=")
        guard characters.count > key.count else { return nil }
        for start in 0...(characters.count - key.count) where Array(characters[start..<(start + key.count)]) == key {
            let quoteIndex = start + key.count
            guard quoteIndex < characters.count, characters[quoteIndex] == "'" || characters[quoteIndex] == "\"" else { continue }
            let quote = characters[quoteIndex]
            guard let end = characters[(quoteIndex + 1)...].firstIndex(of: quote) else { return nil }
            return String(characters[(quoteIndex + 1)..<end])
        }
        return nil
    }

    static func resultStatus(_ line: String) -> Int32? {
        line.split(separator: " ").first { $0.hasPrefix("status=") }.flatMap { Int32($0.dropFirst(7)) }
    }

    static func ownStartTime() -> UInt64 { ProcessInfoLite.startTime(getpid()) ?? 0 }
}

/// The console's lines, keeping the last few (shown when a guest ends without its result line).
struct ConsoleTail {
    private var buffer = LineBuffer()
    private var lines: [String] = []

    mutating func append(_ bytes: ArraySlice<UInt8>) -> [String] {
        let complete = buffer.append(bytes)
        lines += complete
        if lines.count > 20 { lines.removeFirst(lines.count - 20) }
        return complete
    }

    var text: String { (lines + [buffer.remainder]).joined(separator: "\n") }
}
