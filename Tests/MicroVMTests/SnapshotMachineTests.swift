import Devices
import Glibc
import Virtio
import HostOS
@testable import MicroVM
import Testing

/// Pause, snapshot and restore on real /dev/kvm, through the control socket's request handler:
/// a restored tiny guest finishes its work with the answer of an unbroken run.
@Suite("microVM snapshots on real /dev/kvm", .enabled(if: canBoot, "needs a usable /dev/kvm and the tiny guests (make guests)"))
struct SnapshotMachineTests {
    static let ticks: UInt64 = 1500

    func ticker(_ console: FileConsoleSink) throws -> Machine {
        let config = VMConfig(boot: .flat(image: try TinyImages.image("ticker"), name: "ticker", mode: .long, argument: Self.ticks),
                              memoryMiB: 16, timeoutNanoseconds: 60_000_000_000)
        return try Machine.build(config, console: console)
    }

    static func temporaryDirectory() -> String {
        var template = Array("/tmp/tandem-snapshot-test-XXXXXX".utf8CString)
        return String(cString: mkdtemp(&template)!)
    }

    static func checksumLine(_ console: String) -> Substring? {
        console.split(separator: "\n").last { $0.hasPrefix("ticker: ") }
    }

    /// Runs the ticker and, once it is ready, sends `requests` to its control handler in order
    /// (from another thread, as the control socket's thread would); returns the answers.
    func runWithRequests(_ machine: Machine, _ requests: [JSON]) -> (RunReport, [JSON]) {
        nonisolated(unsafe) var answers: [JSON] = []
        let thread = try! HostThread(name: "test control") {
            while machine.stop.ready == nil, !machine.stop.isStopping { usleep(1000) }
            for request in requests { answers.append(machine.handleControl(request)) }
        }
        let report = machine.run()
        thread.join()
        return (report, answers)
    }

    @Test("pause, snapshot, resume: the run finishes; two restores finish with its checksum and leave the memory file as it was")
    func snapshotAndRestoreTwice() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = try? Subprocess.run("/bin/rm", ["-rf", directory]) }
        let console = FileConsoleSink(fd: -1, echo: false)
        let machine = try ticker(console)
        let (report, answers) = runWithRequests(machine, [
            .object([("action", .string("snapshot")), ("dir", .string(directory + "/snap"))]),
            .object([("action", .string("pause"))]),
            .object([("action", .string("describe"))]),
            .object([("action", .string("snapshot")), ("dir", .string(directory + "/snap"))]),
            .object([("action", .string("resume"))]),
        ])
        #expect(report.outcome == .exited(status: 0))
        #expect(report.portExits.first { $0.key == ControlPorts.base }?.count == Self.ticks)
        let unbroken = try #require(Self.checksumLine(console.tail))
        #expect(unbroken.hasPrefix("ticker: \(Self.ticks) ticks, checksum "))
        // Not paused yet: refused.
        #expect(answers[0]["error"] == .string("snapshot \(directory)/snap: the VM is not paused (pause it first)"))
        #expect(answers[1]["state"] == .string("paused"))
        #expect(answers[2]["state"] == .string("paused"))
        let summary = answers[3]
        #expect(summary["error"] == nil, "\(summary.serialized())")
        #expect(summary["memory_bytes"] == .uint(16 << 20))
        guard case .uint(let allocated)? = summary["memory_allocated_bytes"] else { Issue.record("no allocated size"); return }
        #expect(allocated > 0 && allocated < 1 << 20, "only the touched, non-zero pages are written")
        #expect(answers[4]["state"] == .string("running"))

        let memoryPath = directory + "/snap/memory"
        let before = CRC64.checksum(try Files.read(memoryPath))
        for _ in 0..<2 {
            let restoredConsole = FileConsoleSink(fd: -1, echo: false)
            let restored = try Machine.restore(from: directory + "/snap", console: restoredConsole, timeoutNanoseconds: 60_000_000_000)
            #expect(restored.restoredFrom == directory + "/snap")
            let restoredReport = restored.run()
            #expect(restoredReport.outcome == .exited(status: 0))
            #expect(Self.checksumLine(restoredConsole.tail) == unbroken)
            // It carried on from the snapshot: fewer READY signals than ticks (a guest that started
            // over would send one per tick), and its console is the end of the unbroken run's.
            let readies = restoredReport.portExits.first { $0.key == ControlPorts.base }?.count ?? 0
            #expect(readies > 0 && readies < Self.ticks, "\(readies) READY exits after the restore")
            #expect(console.tail.hasSuffix(restoredConsole.tail))
            #expect(restoredReport.phases.ready != nil, "the guest's next READY after the restore")
        }
        #expect(CRC64.checksum(try Files.read(memoryPath)) == before, "the memory file is never written through")
    }

    @Test("requests that are not understood are answered with an error and the VM runs on")
    func badRequests() throws {
        let console = FileConsoleSink(fd: -1, echo: false)
        let machine = try ticker(console)
        let (report, answers) = runWithRequests(machine, [
            .object([("action", .string("explode"))]),
            .object([("verb", .string("pause"))]),
            .object([("action", .string("snapshot")), ("dir", .string("relative/dir"))]),
            .object([("action", .string("resume"))]),
        ])
        #expect(report.outcome == .exited(status: 0))
        #expect(answers[0]["error"] == .string("unknown action explode: describe, pause, resume or snapshot"))
        #expect(answers[1]["error"] != nil)
        #expect(answers[2]["error"] == .string("snapshot needs \"dir\": an absolute path (the VMM's working directory is not the client's)"))
        #expect(answers[3]["error"] == .string("the VM is not paused"))
    }

    @Test("a paused VM still ends on its timeout")
    func pausedTimeout() throws {
        let console = FileConsoleSink(fd: -1, echo: false)
        let config = VMConfig(boot: .flat(image: try TinyImages.image("ticker"), name: "ticker", mode: .long, argument: 1_000_000),
                              memoryMiB: 16, timeoutNanoseconds: 300_000_000)
        let machine = try Machine.build(config, console: console)
        let (report, answers) = runWithRequests(machine, [.object([("action", .string("pause"))])])
        #expect(answers[0]["state"] == .string("paused"))
        #expect(report.outcome == .timedOut(nanoseconds: 300_000_000))
    }

    /// A snapshot of the ticker taken once, for the refusals below to spoil copies of.
    func takeSnapshot(into directory: String) throws {
        let machine = try ticker(FileConsoleSink(fd: -1, echo: false))
        let (_, answers) = runWithRequests(machine, [
            .object([("action", .string("pause"))]),
            .object([("action", .string("snapshot")), ("dir", .string(directory))]),
            .object([("action", .string("resume"))]),
        ])
        #expect(answers[1]["error"] == nil)
    }

    func restoreError(_ directory: String) -> String? {
        do {
            _ = try Machine.restore(from: directory, console: FileConsoleSink(fd: -1, echo: false))
            return nil
        } catch {
            return error.description
        }
    }

    @Test("a state from another CPU, a short memory file or a bad device state is refused by name before anything runs")
    func hostileSnapshots() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = try? Subprocess.run("/bin/rm", ["-rf", directory]) }
        try takeSnapshot(into: directory)
        let statePath = directory + "/state"
        let original = try Files.read(statePath)
        let state = try SnapshotState.decode(original)
        func rewrite(_ edit: (inout SnapshotState) -> Void) throws {
            var copy = state
            edit(&copy)
            try Files.write(statePath, copy.encode())
        }

        try rewrite { $0.host.vendor = $0.host.vendor == "GenuineIntel" ? "AuthenticAMD" : "GenuineIntel" }
        #expect(restoreError(directory)?.hasPrefix("snapshot \(statePath): it was taken on a ") == true)
        try rewrite { $0.host.xsaveBytes += 64 }
        #expect(restoreError(directory)?.contains("its XSAVE area is") == true)
        try rewrite { $0.host.features[1] = .max }
        #expect(restoreError(directory)?.contains("had features this host lacks: CPUID.1:EDX") == true)
        try rewrite { $0.devices[0].bytes[0] = 9 }
        #expect(restoreError(directory)?.contains("serial 8250: state of 8 bytes, version 9") == true || restoreError(directory)?.contains("serial 8250") == true)
        try rewrite { $0.vcpus[0].blobs[0].bytes.removeLast() }
        #expect(restoreError(directory)?.contains("KVM_GET_REGS state is") == true)
        try rewrite { $0.vcpus.append($0.vcpus[0]) ; $0.vcpus[1].id = 1 }
        #expect(restoreError(directory) == "snapshot \(statePath): --vcpus 2: a tiny guest runs on one vCPU (--vcpus is for Linux guests)")

        try Files.write(statePath, original)
        #expect(restoreError(directory) == nil)
        #expect(truncate(directory + "/memory", 4096) == 0)
        #expect(restoreError(directory) == "snapshot \(directory)/memory: is 4096 bytes, shorter than the 16777216 bytes of guest RAM the state claims")
        #expect(unlink(directory + "/memory") == 0)
        #expect(restoreError(directory)?.hasPrefix("snapshot \(directory)/memory: cannot be opened") == true)
    }

    @Test("a VM with a disk snapshots with it: the answer names the disk to copy; a restore while the VM still holds its read-write disk is refused")
    func disks() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = try? Subprocess.run("/bin/rm", ["-rf", directory]) }
        let disk = directory + "/disk.img"
        try Files.write(disk, [UInt8](repeating: 0, count: 1 << 20))
        var config = VMConfig(boot: .flat(image: try TinyImages.image("ticker"), name: "ticker", mode: .long, argument: Self.ticks),
                              memoryMiB: 16, timeoutNanoseconds: 60_000_000_000)
        config.drives = [VMConfig.Drive(path: disk, readOnly: false)]
        // (In a function of its own: the machine, which holds its disk, is gone when it returns.)
        func snapshotWithDisk() throws -> JSON {
            let machine = try Machine.build(config, console: FileConsoleSink(fd: -1, echo: false))
            let (report, answers) = runWithRequests(machine, [
                .object([("action", .string("pause"))]),
                .object([("action", .string("snapshot")), ("dir", .string(directory + "/snap"))]),
                .object([("action", .string("resume"))]),
            ])
            #expect(report.outcome == .exited(status: 0))
            return answers[1]
        }
        let summary = try snapshotWithDisk()
        #expect(summary["error"] == nil, "\(summary.serialized())")
        guard case .array(let disks)? = summary["disks"], let first = disks.first else { Issue.record("no disks in \(summary.serialized())"); return }
        #expect(first["path"] == .string(disk) && first["read_only"] == .bool(false))
        #expect(first["note"].map { "\($0.serialized())".contains("copy it with the snapshot") } == true)
        // The VM ran on to its end and let its disk go; a second VM holding it makes a restore fail.
        func restoreWhileHeld() throws -> String? {
            let holder = try Machine.build(config, console: FileConsoleSink(fd: -1, echo: false))
            defer { withExtendedLifetime(holder) {} }
            return restoreError(directory + "/snap")
        }
        let refusedWhileHeld = try restoreWhileHeld()
        #expect(refusedWhileHeld?.contains("flock(\(disk): another VM uses it") == true, "\(refusedWhileHeld ?? "restored")")
        #expect(restoreError(directory + "/snap") == nil, "with the disk free again the restore is built")
    }

    @Test("a VM with a vsock snapshots with it: the answer names the socket; a restore while the VM still listens there is refused by name; afterwards the restore listens at the same path, and the socket goes with it")
    func vsock() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = try? Subprocess.run("/bin/rm", ["-rf", directory]) }
        let path = directory + "/v.sock"
        let console = FileConsoleSink(fd: -1, echo: false)
        func snapshotWithVsock() throws -> (JSON, String?) {
            var config = VMConfig(boot: .flat(image: try TinyImages.image("ticker"), name: "ticker", mode: .long, argument: Self.ticks),
                                  memoryMiB: 16, timeoutNanoseconds: 60_000_000_000)
            config.vsock = try VirtioVsock(path: path, guestCID: 7)
            let machine = try Machine.build(config, console: console)
            nonisolated(unsafe) var answer: JSON = .null
            nonisolated(unsafe) var whileHeld: String?
            let thread = try HostThread(name: "test control") {
                while machine.stop.ready == nil, !machine.stop.isStopping { usleep(1000) }
                _ = machine.handleControl(.object([("action", .string("pause"))]))
                answer = machine.handleControl(.object([("action", .string("snapshot")), ("dir", .string(directory + "/snap"))]))
                whileHeld = self.restoreError(directory + "/snap")
                _ = machine.handleControl(.object([("action", .string("resume"))]))
            }
            let report = machine.run()
            thread.join()
            #expect(report.outcome == .exited(status: 0))
            return (answer, whileHeld)
        }
        let (summary, whileHeld) = try snapshotWithVsock()
        #expect(summary["error"] == nil, "\(summary.serialized())")
        #expect(summary["vsock"]?["path"] == .string(path) && summary["vsock"]?["guest_cid"] == .uint(7), "\(summary.serialized())")
        #expect(whileHeld?.contains("its vsock at \(path)") == true && whileHeld?.contains("listens") == true, "\(whileHeld ?? "restored")")
        #expect(Files.kind(path) == .missing, "the socket went with the VM")
        let unbroken = try #require(Self.checksumLine(console.tail))

        func restoreWithVsock() throws {
            let restoredConsole = FileConsoleSink(fd: -1, echo: false)
            let restored = try Machine.restore(from: directory + "/snap", console: restoredConsole, timeoutNanoseconds: 60_000_000_000)
            #expect(Files.kind(path) == .other, "the restore listens at \(path)")
            #expect(restored.config.vsock?.guestCID == 7)
            let report = restored.run()
            #expect(report.outcome == .exited(status: 0))
            #expect(report.devices.map(\.failure) == [nil], "\(report.devices.map(\.json))")
            #expect(Self.checksumLine(restoredConsole.tail) == unbroken)
        }
        try restoreWithVsock()
        #expect(Files.kind(path) == .missing, "the socket went with the restored VM")
    }

    /// The host's IPv4 address on `interface` ("172.30.3.1/24"), or nil when it has none or is gone.
    static func hostAddress(_ interface: String) -> String? {
        guard let output = try? Subprocess.run("/usr/sbin/ip", ["-4", "-o", "addr", "show", "dev", interface]), output.status == 0 else { return nil }
        return output.output.split(separator: " ").drop { $0 != "inet" }.dropFirst().first.map(String.init)
    }

    @Test("a VM on a Tandem tap snapshots with it: a restore while the VM still holds tandemN is refused by name; afterwards tandemN comes back with its address and the guest's MAC, and goes with the restored VM",
          .enabled(if: getuid() == 0 && Files.kind("/dev/net/tun") == .other, "needs root and /dev/net/tun"))
    func tandemTap() throws {
        let directory = Self.temporaryDirectory()
        defer { _ = try? Subprocess.run("/bin/rm", ["-rf", directory]) }
        var config = VMConfig(boot: .flat(image: try TinyImages.image("ticker"), name: "ticker", mode: .long, argument: Self.ticks),
                              memoryMiB: 16, timeoutNanoseconds: 60_000_000_000)
        let mac = Tap.randomMAC()
        config.nets = [VMConfig.Net(tap: try Tap.open(name: nil), mac: mac)]
        let name = config.nets[0].tap.name
        let console = FileConsoleSink(fd: -1, echo: false)
        // (In a function of its own: the machine, which holds its tap, is gone when it returns.)
        func snapshotOnTap() throws -> (JSON, String?) {
            let machine = try Machine.build(config, console: console)
            config.nets = []
            nonisolated(unsafe) var answer: JSON = .null
            nonisolated(unsafe) var whileHeld: String?
            let thread = try HostThread(name: "test control") {
                while machine.stop.ready == nil, !machine.stop.isStopping { usleep(1000) }
                _ = machine.handleControl(.object([("action", .string("pause"))]))
                answer = machine.handleControl(.object([("action", .string("snapshot")), ("dir", .string(directory + "/snap"))]))
                whileHeld = self.restoreError(directory + "/snap")
                _ = machine.handleControl(.object([("action", .string("resume"))]))
            }
            let report = machine.run()
            thread.join()
            #expect(report.outcome == .exited(status: 0))
            return (answer, whileHeld)
        }
        let (summary, whileHeld) = try snapshotOnTap()
        #expect(summary["error"] == nil, "\(summary.serialized())")
        guard case .array(let interfaces)? = summary["interfaces"], let first = interfaces.first else { Issue.record("no interfaces in \(summary.serialized())"); return }
        #expect(first["tap"] == .string(name) && first["mac"] == .string(SnapshotState.Net(origin: .tandem, name: name, mac: mac).macText))
        #expect(whileHeld?.contains("\(name) is in use: the VM the snapshot was taken from, or another restore of it, still runs") == true, "\(whileHeld ?? "restored")")
        let unbroken = try #require(Self.checksumLine(console.tail))
        #expect(Self.hostAddress(name) == nil, "\(name) went with the VM")

        func restoreOnTap() throws {
            let restoredConsole = FileConsoleSink(fd: -1, echo: false)
            let restored = try Machine.restore(from: directory + "/snap", console: restoredConsole, timeoutNanoseconds: 60_000_000_000)
            let index = try #require(SnapshotState.Net.tandemIndex(name))
            #expect(Self.hostAddress(name) == "172.30.\(index).1/24")
            let net = restored.transports.compactMap { $0.device as? VirtioNet }.first
            #expect(net?.mac == mac && net?.interfaceName == name)
            let report = restored.run()
            #expect(report.outcome == .exited(status: 0))
            // The ticker never starts the device: nothing queued to serve, nothing broken.
            #expect(report.devices.map(\.failure) == [nil], "\(report.devices.map(\.json))")
            #expect(Self.checksumLine(restoredConsole.tail) == unbroken)
        }
        try restoreOnTap()
        #expect(Self.hostAddress(name) == nil, "\(name) went with the restored VM")
    }
}
