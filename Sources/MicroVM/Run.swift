import CLinux
import Devices
import GuestMemory
import HostOS
import KVM
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// The shared "should the VM stop, and why" state: written once by whoever stops the VM first
/// (the guest through EXIT or HLT, a crash, the timeout, a host signal), read by every vCPU loop.
/// It also receives the control ports' events and wakes the main thread through an eventfd.
final class StopState: ControlPortsDelegate, ResetLine, @unchecked Sendable {
    private let lock = Lock()
    private var outcomeValue: RunOutcome?
    private var readyTime: UInt64?
    private var firstRunTime: UInt64?
    private var finishedVCPUs = 0
    /// vCPU 0 and the thread that runs it (the one that called `Machine.run`): kicked when another
    /// thread stops the VM, since that thread may sit in KVM_RUN.
    private var leader: VCPU?
    private var leaderThread = pthread_t()
    let wake: EventFD
    /// Pausing (the control socket's `pause`): every vCPU leaves KVM_RUN at a point where its state
    /// is whole and parks until `resume` or a stop.
    private var pauseRequested = false
    private var parkedVCPUs = 0
    /// Every running vCPU and its thread, so a pause can kick them all.
    private var running: [(vcpu: VCPU, thread: pthread_t)] = []
    /// Written on resume and on stop (parked vCPUs wait on it); drained when a pause begins.
    let resumeEvent: EventFD
    /// Written by each vCPU as it parks (the pausing thread waits on it).
    let parkedEvent: EventFD

    init() throws(SystemError) {
        wake = try EventFD()
        resumeEvent = try EventFD()
        parkedEvent = try EventFD()
    }

    var outcome: RunOutcome? { lock.withLock { outcomeValue } }
    var isStopping: Bool { lock.withLock { outcomeValue != nil } }
    var ready: UInt64? { lock.withLock { readyTime } }
    var firstRun: UInt64? { lock.withLock { firstRunTime } }

    func markFirstRun() {
        let now = Clock.monotonicNanoseconds()
        lock.withLock { if firstRunTime == nil { firstRunTime = now } }
    }

    /// Records why the VM stops (the first reason wins), wakes whoever waits on `wake`, and kicks
    /// vCPU 0 out of KVM_RUN unless this is its own thread (which checks on its way back in).
    func requestStop(_ outcome: RunOutcome) {
        let (leader, thread) = lock.withLock {
            if outcomeValue == nil { outcomeValue = outcome }
            return (self.leader, leaderThread)
        }
        wake.signal()
        resumeEvent.signal()
        if let leader, pthread_equal(thread, pthread_self()) == 0 { leader.kick(thread: thread) }
    }

    /// What a vCPU loop does next, read under one lock per exit.
    enum LoopAction { case run, pause, stop }
    var loopAction: LoopAction { lock.withLock { outcomeValue != nil ? .stop : pauseRequested ? .pause : .run } }

    /// `vcpu` runs on the calling thread from now until the run ends (for pausing).
    func registerRunning(_ vcpu: VCPU) {
        let thread = pthread_self()
        lock.withLock { running.append((vcpu, thread)) }
    }

    /// Whether every one of `vcpuCount` vCPUs is parked now.
    func isPaused(vcpuCount: Int) -> Bool { lock.withLock { pauseRequested && parkedVCPUs == vcpuCount } }

    /// Asks every vCPU to park and waits until `vcpuCount` have, or the VM stops, or `grace` ns
    /// pass. Returns whether all are parked (false: the VM is stopping, or a vCPU did not answer,
    /// and then the pause is withdrawn). A vCPU parks only after KVM_RUN returned EINTR, so the
    /// I/O of its last exit has been completed by KVM and its registers can be read whole.
    func pause(vcpuCount: Int, grace: UInt64) -> Bool {
        let begun: Bool = lock.withLock {
            guard outcomeValue == nil else { return false }
            if !pauseRequested {
                pauseRequested = true
                var drain: UInt64 = 0
                _ = read(resumeEvent.fd.rawValue, &drain, 8)
            }
            return true
        }
        guard begun else { return false }
        let deadline = Clock.monotonicNanoseconds() + grace
        var fds = [pollfd(fd: parkedEvent.fd.rawValue, events: Int16(POLLIN), revents: 0)]
        while true {
            let (parked, stopping, vcpus) = lock.withLock { (parkedVCPUs, outcomeValue != nil, running) }
            if stopping { break }
            if parked == vcpuCount { return true }
            if Clock.monotonicNanoseconds() >= deadline { break }
            for entry in vcpus { entry.vcpu.kick(thread: entry.thread) }
            _ = poll(&fds, 1, 20)
            var drain: UInt64 = 0
            _ = read(parkedEvent.fd.rawValue, &drain, 8)
        }
        resume()
        return false
    }

    /// Lets parked vCPUs run on.
    func resume() {
        lock.withLock { pauseRequested = false }
        resumeEvent.signal()
    }

    /// Parks the calling vCPU while a pause lasts. `extra` (vCPU 0's signalfd) is watched too and
    /// `onExtra` called when it is readable: a stop signal ends a paused VM as a running one.
    func park(extra: Int32? = nil, onExtra: (() -> Void)? = nil) {
        lock.withLock { parkedVCPUs += 1 }
        parkedEvent.signal()
        defer { lock.withLock { parkedVCPUs -= 1 } }
        var fds = [pollfd(fd: resumeEvent.fd.rawValue, events: Int16(POLLIN), revents: 0)]
        if let extra { fds.append(pollfd(fd: extra, events: Int16(POLLIN), revents: 0)) }
        while loopAction == .pause {
            _ = poll(&fds, nfds_t(fds.count), -1)
            if fds.count > 1, fds[1].revents != 0 { onExtra?() }
        }
    }

    /// `vcpu` runs on the calling thread until `endLead`.
    func lead(_ vcpu: VCPU) {
        let thread = pthread_self()
        lock.withLock {
            leader = vcpu
            leaderThread = thread
        }
    }

    func endLead() { lock.withLock { leader = nil } }

    /// A vCPU thread left its loop.
    func vcpuFinished() {
        lock.withLock { finishedVCPUs += 1 }
        wake.signal()
    }

    var finishedCount: Int { lock.withLock { finishedVCPUs } }

    func guestBecameReady(value: UInt32, timestamp: UInt64) {
        lock.withLock { if readyTime == nil { readyTime = timestamp } }
    }

    func guestRequestedExit(status: UInt8) {
        requestStop(.exited(status: status))
    }

    func guestRequestedReset() {
        requestStop(.reset)
    }
}

/// Per-vCPU counters, merged after the threads end (no sharing while they run). Made by `run`
/// before any vCPU runs, so a vCPU's exit path allocates nothing.
struct VCPUStatistics {
    var exits: UInt64 = 0
    /// Exits by what caused them: port I/O by port (a `rep ins`/`outs` is one exit), MMIO by
    /// 4 KiB page, and the rest by kind — where a guest's boot spends its trips to the VMM.
    let portExits: ExitTally
    let mmioExits: ExitTally
    var haltExits: UInt64 = 0
    var interruptedExits: UInt64 = 0
    var unknownPorts: UInt64 = 0
    var unknownMMIO: UInt64 = 0
    var firstUnknownPort: UInt16?
    var firstUnknownMMIO: UInt64?

    /// Distinct ports and MMIO pages told apart per vCPU; exits anywhere else are counted
    /// together (`port_io_other_ports`, `mmio_other_pages`).
    static let portsTracked = 256
    static let mmioPagesTracked = 1024

    init() throws(SystemError) {
        portExits = try ExitTally(limit: Self.portsTracked, what: "the port exit counts")
        mmioExits = try ExitTally(limit: Self.mmioPagesTracked, what: "the MMIO exit counts")
    }

    func countMMIOExit(at address: UInt64) {
        mmioExits.count(address & ~RunReport.mmioPageMask)
    }
}

extension Machine {
    /// Runs the VM until the guest ends, crashes, times out, or a host signal (SIGINT, SIGTERM,
    /// SIGHUP) arrives. vCPU 0 runs on this thread, each other vCPU on a thread of its own; when
    /// vCPU 0 leaves its loop this thread kicks the others out of KVM_RUN and joins every thread
    /// it started, so nothing outlives the call. Uses SIGALRM on this thread for the timeout.
    public func run() -> RunReport {
        // Block the stop signals and the timeout's timer signal before any thread starts (they
        // inherit the mask): they reach vCPU 0, which runs on this thread, only by interrupting its
        // KVM_RUN, and are read from a signalfd instead of killing the process mid-run.
        var blocked = BlockedSignals(Machine.leaderSignals)
        defer { blocked.restore() }
        let signals: SignalFD
        do { signals = try SignalFD(Machine.leaderSignals) } catch {
            return RunReport(outcome: .vmmFailed(error.description), phases: phases, memoryMiB: config.memoryMiB, vcpus: vcpus.count)
        }
        _ = VCPU.prepareKickSignal()

        // Each vCPU thread writes only its own element; read after they are joined.
        let statistics = UnsafeMutableBufferPointer<VCPUStatistics>.allocate(capacity: vcpus.count)
        var made = 0
        defer {
            statistics.baseAddress?.deinitialize(count: made)
            statistics.deallocate()
        }
        do {
            while made < vcpus.count {
                (statistics.baseAddress! + made).initialize(to: try VCPUStatistics())
                made += 1
            }
        } catch {
            return RunReport(outcome: .vmmFailed(error.description), phases: phases, memoryMiB: config.memoryMiB, vcpus: vcpus.count)
        }

        // The device thread first (the guest may notify a queue as soon as it runs), stopped
        // after the vCPUs have left (nothing notifies it then).
        do { try deviceThread?.start() } catch {
            return RunReport(outcome: .vmmFailed(error.description), phases: phases, memoryMiB: config.memoryMiB, vcpus: vcpus.count)
        }
        // vCPU 0 runs on this thread (a tiny guest's start waits for no thread, its end wakes no
        // other: ~0.1 ms each way here); the others on threads of their own.
        var others: [(vcpu: VCPU, thread: HostThread)] = []
        for (index, vcpu) in vcpus.enumerated().dropFirst() {
            do {
                others.append((vcpu, try HostThread(name: "vcpu\(index)") { [self] in
                    runLoop(vcpu, statistics: &statistics[index])
                    stop.vcpuFinished()
                }))
            } catch {
                stop.requestStop(.vmmFailed(error.description))
                break
            }
        }
        let helper: (thread: HostThread, done: EventFD)?
        do { helper = try startHelper() } catch {
            helper = nil
            stop.requestStop(.vmmFailed(error.description))
        }
        lead(statistics: &statistics[0], signals: signals)
        stopVCPUs(others)
        for other in others { other.thread.join() }
        if let helper {
            helper.done.signal()
            helper.thread.join()
        }
        deviceThread?.stop()
        // The vsock's socket file goes with the run (a killed VMM's is replaced by the next run).
        config.vsock?.close()
        config.controlSocket?.close()
        console.finish()

        var outcome = stop.outcome ?? .halted
        // A kernel that panics reboots (panic=-1): that is a crash, named by the panic line.
        if outcome == .reset, let panic = console.tail.split(separator: "\n").first(where: { $0.contains("Kernel panic") }) {
            outcome = .crashed(CrashReport(exit: "kernel panic", vcpu: 0, rip: nil, detail: String(panic.drop(while: { $0 != "K" }))))
        }
        var report = RunReport(outcome: outcome, phases: phases, memoryMiB: config.memoryMiB, vcpus: vcpus.count)
        report.phases.firstRun = stop.firstRun
        report.phases.ready = stop.ready
        report.phases.exit = Clock.monotonicNanoseconds()
        var portExits: [ExitCount] = []
        var mmioExits: [ExitCount] = []
        for entry in statistics {
            report.exits += entry.exits
            entry.portExits.forEach { port, count in portExits.append(ExitCount(key: port, count: count)) }
            entry.mmioExits.forEach { page, count in mmioExits.append(ExitCount(key: page, count: count)) }
            report.portExitsUntracked += entry.portExits.untracked
            report.mmioExitsUntracked += entry.mmioExits.untracked
            report.haltExits += entry.haltExits
            report.interruptedExits += entry.interruptedExits
            report.unknownPortAccesses += entry.unknownPorts
            report.unknownMMIOAccesses += entry.unknownMMIO
            report.firstUnknownPort = report.firstUnknownPort ?? entry.firstUnknownPort
            report.firstUnknownMMIO = report.firstUnknownMMIO ?? entry.firstUnknownMMIO
        }
        report.portExits = ExitCount.combined(portExits)
        report.mmioExits = ExitCount.combined(mmioExits)
        if case .linux(let kernel, _, _) = config.boot { report.kernel = kernel.name }
        report.restoredFrom = restoredFrom
        report.devices = mmioBus.entries.compactMap { entry in
            (entry.device as? MMIOTransport).map {
                DeviceReport(name: entry.name, requests: $0.completedRequests, notifyExits: $0.notifyExits, failure: $0.failure,
                             connections: ($0.device as? VirtioVsock)?.connectionsOpened)
            }
        }
        report.consoleBytes = console.totalBytes
        report.consoleTail = console.tail
        report.memory = ResidentMemory.current()
        report.guestRAMTouchedBytes = residentGuestRAM()
        return report
    }

    /// Finishes the image copies left to the run (a Linux initrd) while the vCPUs already run:
    /// first KVM_RUN does not wait for ~10 MB to be copied into fresh memory, and a vCPU that
    /// touches a page before it is there waits for it (`GuestMemory.deferFill`). A failed copy
    /// (the file shrank meanwhile) stops the VM with the file named.
    private func completePendingCopies() {
        guard !pendingCopies.isEmpty else { return }
        for copy in pendingCopies {
            do { try copy.complete() } catch {
                stop.requestStop(.vmmFailed(error.description))
                pendingCopies = []
                return
            }
        }
        pendingCopies = []
        phases.imageComplete = Clock.monotonicNanoseconds()
    }

    /// How long the vCPUs get to leave KVM_RUN once kicked before the VMM gives up on them.
    static let vcpuStopGraceNanoseconds: UInt64 = 2_000_000_000

    /// Kicks every vCPU until all have left their loops. A vCPU that cannot be stopped (it should
    /// not happen: the kick signal is unblocked on every vCPU thread) must not hang the VMM, so
    /// after the grace period the process exits with Tandem's error status.
    private func stopVCPUs(_ others: [(vcpu: VCPU, thread: HostThread)]) {
        guard !others.isEmpty else { return }
        let deadline = Clock.monotonicNanoseconds() + Machine.vcpuStopGraceNanoseconds
        var fds = [pollfd(fd: stop.wake.fd.rawValue, events: Int16(POLLIN), revents: 0)]
        while stop.finishedCount < others.count {
            for other in others { other.vcpu.kick(thread: other.thread.handle) }
            if Clock.monotonicNanoseconds() >= deadline {
                console.flush()
                StandardError.line("tandem: error: a vCPU did not leave KVM_RUN within 2 s of being stopped; exiting")
                _exit(ExitStatus.tandemError)
            }
            var drain: UInt64 = 0
            _ = poll(&fds, 1, 50)
            _ = read(stop.wake.fd.rawValue, &drain, 8)
        }
    }

    /// Host signals that stop a VM cleanly instead of killing the VMM.
    static let stopSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]
    /// The signal of `--timeout`'s timer, sent to vCPU 0's thread only.
    static let timeoutSignal = SIGALRM
    /// What may interrupt vCPU 0's KVM_RUN: the stop signals and the timer's.
    static let leaderSignals = stopSignals + [timeoutSignal]

    /// vCPU 0's loop on this thread, which also answers the host: a stop signal or the timeout's
    /// timer makes KVM_RUN return EINTR (KVM_SET_SIGNAL_MASK) and is read from `signals` then.
    private func lead(statistics: inout VCPUStatistics, signals: SignalFD) {
        var timer: ThreadTimer?
        // The kick signal unblocked first: KVM_SET_SIGNAL_MASK takes this thread's mask as it is
        // now, and a kick blocked inside KVM_RUN would never make it return (a VMM started by a
        // parent that blocks real-time signals could then not be paused or stopped by a thread).
        VCPU.acceptKicks()
        do {
            try vcpus[0].letSignalsInterruptRun(Machine.leaderSignals)
            timer = try config.timeoutNanoseconds.map { limit throws(SystemError) in
                try ThreadTimer(signal: Machine.timeoutSignal, afterNanoseconds: limit)
            }
        } catch {
            stop.requestStop(.vmmFailed("\(error)"))
            return
        }
        stop.lead(vcpus[0])
        defer { stop.endLead() }
        runLoop(vcpus[0], statistics: &statistics, signals: signals) { [self] in
            while let signal = signals.next() {
                if signal == Machine.timeoutSignal, let limit = config.timeoutNanoseconds {
                    stop.requestStop(.timedOut(nanoseconds: limit))
                } else if signal != Machine.timeoutSignal {
                    stop.requestStop(.interrupted(signal: signal))
                }
            }
        }
        // The timer gone, a SIGALRM it sent that was not read yet must not survive the run: the
        // mask is restored when `run` returns, and SIGALRM's default action ends the process.
        // (Kernel 6.18 drops a deleted timer's queued signal itself — 450 runs ending at their
        // timeout never died of it without this — but older kernels leave it pending.)
        guard timer != nil else { return }
        timer = nil
        var alarm = sigset_t()
        sigemptyset(&alarm)
        sigaddset(&alarm, Machine.timeoutSignal)
        var now = timespec()
        while sigtimedwait(&alarm, nil, &now) == Machine.timeoutSignal {}
    }

    /// The run's work beside its vCPUs, on a thread of its own only when there is some: finishing
    /// a Linux guest's image copies while it starts, passing a terminal's keys to the guest's
    /// console (Ctrl-A x stops the VM), and answering the control socket. Ends when `done` is
    /// signalled.
    private func startHelper() throws(SystemError) -> (thread: HostThread, done: EventFD)? {
        guard !pendingCopies.isEmpty || config.consoleInput != nil || config.controlSocket != nil else { return nil }
        let done = try EventFD()
        let thread = try HostThread(name: "vmm helper") { [self] in
            completePendingCopies()
            // Only now are control requests answered: a snapshot never sees a half-copied initrd.
            if config.consoleInput != nil || config.controlSocket != nil { serve(until: done) }
        }
        return (thread, done)
    }

    /// Terminal input to COM1 and control connections until `done`; the input's end leaves the
    /// guest running.
    private func serve(until done: EventFD) {
        var fds = [pollfd(fd: done.fd.rawValue, events: Int16(POLLIN), revents: 0)]
        var inputSlot: Int?, controlSlot: Int?
        if let input = config.consoleInput {
            inputSlot = fds.count
            fds.append(pollfd(fd: input, events: Int16(POLLIN), revents: 0))
        }
        if let control = config.controlSocket {
            controlSlot = fds.count
            fds.append(pollfd(fd: control.fd.rawValue, events: Int16(POLLIN), revents: 0))
        }
        var escape = ConsoleEscape()
        var buffer = [UInt8](repeating: 0, count: 1024)
        while fds[0].revents == 0 {
            if poll(&fds, nfds_t(fds.count), -1) < 0, errno != EINTR {
                stop.requestStop(.vmmFailed(SystemError("poll", "console input and control socket").description))
                return
            }
            if let slot = controlSlot, fds[slot].revents != 0 {
                while let connection = config.controlSocket?.accept() { serveControlConnection(connection) }
            }
            if let slot = inputSlot, fds[slot].fd >= 0, fds[slot].revents != 0, let input = config.consoleInput {
                let count = read(input, &buffer, buffer.count)
                if count > 0 {
                    let (bytes, quit) = escape.filter(buffer[0..<count])
                    serial?.enqueueInput(bytes)
                    if quit { stop.requestStop(.interrupted(signal: SIGINT)) }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    fds[slot].fd = -1  // end of input: the guest keeps running (poll skips a negative fd)
                }
            }
        }
    }

    /// One vCPU's loop: enter the guest, answer its exit, repeat until told to stop.
    private func runLoop(_ vcpu: VCPU, statistics: inout VCPUStatistics, signals: SignalFD? = nil, interrupted: (() -> Void)? = nil) {
        VCPU.acceptKicks()
        stop.registerRunning(vcpu)
        if vcpu.id == 0 { stop.markFirstRun() }
        loop: while true {
            switch stop.loopAction {
            case .stop: break loop
            // Leave KVM_RUN at once, after KVM completes the last exit's I/O, and park below.
            case .pause: vcpu.requestImmediateExit()
            case .run: break
            }
            let exit: VCPUExit
            do { exit = try vcpu.run() } catch {
                stop.requestStop(.vmmFailed(error.description))
                break loop
            }
            statistics.exits += 1
            switch exit {
            case .portIO(let access):
                statistics.portExits.count(UInt64(access.port))
                handlePortIO(access, statistics: &statistics)
            case .mmio(let access):
                statistics.countMMIOExit(at: access.address)
                let handled = access.isWrite
                    ? mmioBus.write(access.address, from: UnsafeRawBufferPointer(access.data))
                    : mmioBus.read(access.address, into: access.data)
                if !handled {
                    statistics.unknownMMIO += 1
                    if statistics.firstUnknownMMIO == nil { statistics.firstUnknownMMIO = access.address }
                    if !access.isWrite { access.data.initializeMemory(as: UInt8.self, repeating: 0xff) }
                }
            case .halt:
                statistics.haltExits += 1
                stop.requestStop(.halted)
            case .shutdown where config.linuxRebootsByTripleFault:
                stop.requestStop(.reset)  // the guest's reboot (reboot=t); with Tandem's reboot=k it is a crash
            case .shutdown:
                stop.requestStop(.crashed(crash(vcpu, "KVM_EXIT_SHUTDOWN (triple fault)", detail: Self.shutdownDetail(vcpu))))
            case .internalError(let suberror):
                stop.requestStop(.crashed(crash(vcpu, "KVM_EXIT_INTERNAL_ERROR", detail: Machine.internalErrorName(suberror))))
            case .failEntry(let reason):
                stop.requestStop(.crashed(crash(vcpu, "KVM_EXIT_FAIL_ENTRY", detail: "hardware reason 0x" + String(reason, radix: 16))))
            case .systemEvent(let type):
                stop.requestStop(.crashed(crash(vcpu, "KVM_EXIT_SYSTEM_EVENT", detail: "type \(type)")))
            case .interrupted:
                statistics.interruptedExits += 1
                interrupted?()
                if stop.loopAction == .pause { stop.park(extra: signals?.fd.rawValue, onExtra: interrupted) }
                continue
            case .other(let reason):
                stop.requestStop(.crashed(crash(vcpu, "unhandled KVM exit \(reason)", detail: "")))
            }
        }
    }

    private func handlePortIO(_ access: PortIOAccess, statistics: inout VCPUStatistics) {
        // `rep ins`/`rep outs` deliver `count` elements of `size` bytes in one exit.
        for element in 0..<access.count {
            let slice = UnsafeMutableRawBufferPointer(rebasing: access.data[(element * access.size)..<((element + 1) * access.size)])
            let handled = access.isWrite
                ? portBus.write(UInt64(access.port), from: UnsafeRawBufferPointer(slice))
                : portBus.read(UInt64(access.port), into: slice)
            if !handled {
                statistics.unknownPorts += 1
                if statistics.firstUnknownPort == nil { statistics.firstUnknownPort = access.port }
                // An ISA port nobody decodes floats high.
                if !access.isWrite { slice.initializeMemory(as: UInt8.self, repeating: 0xff) }
            }
        }
    }

    private func crash(_ vcpu: VCPU, _ exit: String, detail: String) -> CrashReport {
        CrashReport(exit: exit, vcpu: vcpu.id, rip: try? vcpu.registers().rip, detail: detail)
    }

    /// The reset vector's RIP and CS base: where a vCPU stands after a reset.
    static let resetRIP: UInt64 = 0xfff0, resetCSBase: UInt64 = 0xffff_0000

    /// What to add to a triple fault's report: KVM on AMD (SVM) reinitialises the vCPU before it
    /// reports the shutdown, so its registers are the reset state and the faulting RIP is lost.
    static func shutdownDetail(_ vcpu: VCPU) -> String {
        guard let registers = try? vcpu.registers(), registers.rip == resetRIP,
              let special = try? vcpu.specialRegisters(), special.cs.base == resetCSBase else { return "" }
        return "the vCPU was already in its reset state (KVM on AMD reinitialises it before reporting a triple fault): the faulting RIP is lost"
    }

    static func internalErrorName(_ suberror: UInt32) -> String {
        switch suberror {
        case 1: "KVM_INTERNAL_ERROR_EMULATION: KVM could not emulate an instruction"
        case 2: "KVM_INTERNAL_ERROR_SIMUL_EX: exception while delivering an exception"
        case 3: "KVM_INTERNAL_ERROR_DELIVERY_EV: event delivery failed"
        case 4: "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON"
        default: "suberror \(suberror)"
        }
    }

    /// Ends the process with `status`, after the run, without making whoever waits for it wait for
    /// the kernel's teardown of this VM too (the VM's destruction and guest RAM's unmapping: ~2 ms
    /// of a tiny microVM's ~5 ms exec → exit on this host). A holder process keeps the VM's
    /// descriptors and memory and ends with this one; every other descriptor (the console, stdout,
    /// the disks) is closed first, so readers see their end with the status
    /// (`clinux_exit_leaving_teardown`). Not for a machine with taps (`canLeaveTeardown`).
    public func exitLeavingTeardown(_ status: Int32) -> Never {
        console.flush()
        let keep = [vm.fd.rawValue] + vcpus.map { $0.fd.rawValue }
        withExtendedLifetime(self) {
            keep.withUnsafeBufferPointer { clinux_exit_leaving_teardown(status, $0.baseAddress, Int32($0.count)) }
        }
    }

    /// Whether all that is left after the run is the kernel's to release: a tap's release (a bridge
    /// lease) is Swift's work, done when the machine is released.
    public var canLeaveTeardown: Bool { config.nets.isEmpty }

    /// Guest RAM pages resident in host memory now (mincore), bytes.
    func residentGuestRAM() -> UInt64 {
        var total: UInt64 = 0
        let page = GuestMemory.pageSize
        for region in memory.regions {
            var vector = [UInt8](repeating: 0, count: (region.size + page - 1) / page)
            guard mincore(region.host, region.size, &vector) == 0 else { continue }
            total += UInt64(vector.reduce(0) { $0 + Int($1 & 1) }) * UInt64(page)
        }
        return total
    }
}

/// QEMU's console escape: Ctrl-A then `x` stops the VM, Ctrl-A Ctrl-A sends one Ctrl-A. With the
/// terminal in raw mode Ctrl-C goes to the guest (its shell), so this is the way out.
struct ConsoleEscape {
    static let prefix: UInt8 = 0x01
    private var pending = false

    /// The bytes to pass to the guest, and whether the user asked to stop.
    mutating func filter(_ input: ArraySlice<UInt8>) -> (bytes: [UInt8], quit: Bool) {
        var out: [UInt8] = []
        for byte in input {
            if pending {
                pending = false
                if byte == UInt8(ascii: "x") || byte == UInt8(ascii: "X") { return (out, true) }
                out += byte == Self.prefix ? [Self.prefix] : [Self.prefix, byte]
            } else if byte == Self.prefix {
                pending = true
            } else {
                out.append(byte)
            }
        }
        return (out, false)
    }
}
