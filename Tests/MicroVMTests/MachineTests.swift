import Glibc
import HostFacts
import HostOS
import BootLoader
@testable import MicroVM
import Testing

/// The tiny guests `make guests` builds, found from this file's place in the checkout.
enum TinyImages {
    static let directory: String = {
        if let override = getenv("TANDEM_GUEST_DIR") { return String(cString: override) + "/tiny" }
        var path = #filePath
        for _ in 0..<3 { path = Files.directory(of: path) }
        return path + "/guest-images/build/tiny"
    }()

    static func image(_ name: String) throws -> [UInt8] {
        try Files.read("\(directory)/\(name).bin")
    }

    static var built: Bool { Files.kind("\(directory)/hello.bin") == .regular }
}

/// KVM is usable here: the tests below boot real guests through /dev/kvm.
let kvmUsable = HostFacts.probeKVM(path: "/dev/kvm").usable
let canBoot = kvmUsable && TinyImages.built

@Suite("Machine on real /dev/kvm", .enabled(if: canBoot, "needs a usable /dev/kvm and the tiny guests (make guests)"))
struct MachineTests {
    func boot(_ name: String, mode: CPUMode = .long, argument: UInt64 = 0, memoryMiB: Int = 16,
              timeout: UInt64? = 10_000_000_000) throws -> (RunReport, String) {
        let console = FileConsoleSink(fd: -1, echo: false)
        let config = VMConfig(boot: .flat(image: try TinyImages.image(name), name: name, mode: mode, argument: argument),
                              memoryMiB: memoryMiB, timeoutNanoseconds: timeout)
        let machine = try Machine.build(config, console: console)
        let report = machine.run()
        return (report, console.tail)
    }

    @Test("hello prints its line, signals ready before exiting, and exits 0")
    func hello() throws {
        let (report, console) = try boot("hello")
        #expect(console == "Hello from a tiny Tandem microVM!\n")
        #expect(report.outcome == .exited(status: 0))
        #expect(report.exitStatus == 0)
        let phases = report.phases
        #expect(phases.vmCreated! <= phases.imageLoaded! && phases.imageLoaded! <= phases.firstRun!)
        #expect(phases.firstRun! <= phases.ready! && phases.ready! <= phases.exit!)
        #expect(report.unknownPortAccesses == 0 && report.unknownMMIOAccesses == 0)
        #expect(report.guestRAMTouchedBytes > 0 && report.guestRAMTouchedBytes < 1 << 20)
    }

    @Test("the real-mode hello runs too")
    func realMode() throws {
        let (report, console) = try boot("hello16", mode: .real)
        #expect(console == "Hello from a tiny Tandem microVM in real mode!\n")
        #expect(report.outcome == .exited(status: 0))
    }

    @Test("compute gives the known prime count and sum", arguments: [(UInt64(100), "primes=25 sum=1060"), (10_000, "primes=1229 sum=5736396")])
    func compute(n: UInt64, expected: String) throws {
        let (report, console) = try boot("compute", argument: n)
        #expect(console == "compute n=\(n) \(expected)\n")
        #expect(report.exitStatus == 0)
    }

    @Test("compute asks for more memory instead of overrunning RAM")
    func computeTooBig() throws {
        let (report, console) = try boot("compute", argument: 2 << 20, memoryMiB: 1)
        #expect(console.contains("raise --memory"))
        #expect(report.outcome == .exited(status: 2))
    }

    @Test("the EXIT port's status becomes the run's exit status", arguments: [0, 3, 255])
    func exitStatus(status: UInt64) throws {
        let (report, _) = try boot("exit", argument: status)
        #expect(report.exitStatus == Int32(status))
    }

    @Test("an endless loop is stopped by the timeout")
    func timeout() throws {
        let started = Clock.monotonicNanoseconds()
        let (report, _) = try boot("spin", timeout: 200_000_000)
        #expect(report.outcome == .timedOut(nanoseconds: 200_000_000))
        #expect(report.exitStatus == ExitStatus.timedOut)
        #expect(report.phases.ready != nil)
        #expect(Clock.monotonicNanoseconds() - started < 5_000_000_000)
    }

    @Test("a triple fault is reported with the exit and the guest RIP")
    func tripleFault() throws {
        let (report, _) = try boot("triplefault")
        guard case .crashed(let crash) = report.outcome else {
            Issue.record("expected a crash, got \(report.outcome)")
            return
        }
        #expect(crash.exit.contains("KVM_EXIT_SHUTDOWN"))
        #expect(crash.rip == 0x10000)
        #expect(crash.description == "guest crashed: KVM_EXIT_SHUTDOWN (triple fault) on vCPU 0 at guest RIP 0x10000")
        #expect(report.exitStatus == ExitStatus.guestCrashed)
    }

    @Test("random port and MMIO accesses are answered harmlessly and counted")
    func wild() throws {
        let (report, console) = try boot("wild")
        #expect(report.outcome == .exited(status: 0))
        #expect(console.contains("50 MMIO addresses"))
        #expect(report.unknownMMIOAccesses >= 100)  // 50 writes and 50 reads (an emulator may add a read)
        #expect(report.unknownPortAccesses >= 300)
        #expect(report.firstUnknownMMIO.map { $0 >= 0xc000_0000 } == true)
    }

    @Test("a console flood neither hangs nor grows memory: the timeout ends it")
    func flood() throws {
        let (report, console) = try boot("flood", timeout: 300_000_000)
        #expect(report.exitStatus == ExitStatus.timedOut)
        #expect(report.consoleBytes > 1000)
        #expect(console.utf8.count <= FileConsoleSink.tailCapacity)
    }

    @Test("memory outside what a tiny guest can use is refused before KVM is touched", arguments: [0, 3073, 1 << 30])
    func memoryLimits(mib: Int) throws {
        #expect(throws: MicroVMError.self) {
            try Machine.build(VMConfig(boot: .flat(image: [0xf4], name: "hlt", mode: .long, argument: 0), memoryMiB: mib),
                              console: FileConsoleSink(fd: -1, echo: false))
        }
    }

    @Test("a HLT with no EXIT write is a clean halt with status 0")
    func halt() throws {
        let console = FileConsoleSink(fd: -1, echo: false)
        let machine = try Machine.build(VMConfig(boot: .flat(image: [0xf4], name: "hlt", mode: .long, argument: 0), memoryMiB: 1),
                                        console: console)
        let report = machine.run()
        #expect(report.outcome == .halted)
        #expect(report.exitStatus == 0)
    }
}

@Suite("Console escape (Ctrl-A x)")
struct ConsoleEscapeTests {
    @Test("Ctrl-A x quits; Ctrl-A Ctrl-A sends one Ctrl-A; Ctrl-A then another key sends both; split reads work")
    func escape() {
        var escape = ConsoleEscape()
        #expect(escape.filter([0x61, 0x01, 0x78, 0x62][...]) == ([0x61], true))
        var doubled = ConsoleEscape()
        #expect(doubled.filter([0x01, 0x01, 0x63][...]) == ([0x01, 0x63], false))
        var other = ConsoleEscape()
        #expect(other.filter([0x01, 0x64][...]) == ([0x01, 0x64], false))
        var split = ConsoleEscape()
        #expect(split.filter([0x01][...]) == ([], false))
        #expect(split.filter([0x58][...]) == ([], true))
    }
}

@Suite("A Linux guest's triple fault: a reboot only when its command line says reboot=t")
struct TripleFaultRebootTests {
    static func config(_ commandLine: String) -> VMConfig {
        VMConfig(boot: .linux(kernel: InMemoryImage([], name: "vmlinuz"), initrd: nil, commandLine: commandLine), memoryMiB: 256)
    }

    @Test("Tandem's reboot=k: a crash; the user's reboot=t (the last reboot= counts): the guest's reboot; a tiny guest: never")
    func rule() {
        #expect(!Self.config("").linuxRebootsByTripleFault)
        #expect(!Self.config("quiet tandem.workload=http").linuxRebootsByTripleFault)
        #expect(Self.config("reboot=t").linuxRebootsByTripleFault)
        #expect(Self.config("quiet reboot=triple").linuxRebootsByTripleFault)
        #expect(!Self.config("reboot=t reboot=k").linuxRebootsByTripleFault)
        #expect(!VMConfig(boot: .flat(image: [], name: "hello", mode: .long, argument: 0), memoryMiB: 1).linuxRebootsByTripleFault)
    }
}

@Suite("Exits by cause")
struct ExitCountTests {
    @Test("MMIO exits are counted per page, and past 1024 distinct pages in one bucket: a guest cannot grow the counts without bound")
    func mmioPagesBounded() throws {
        let statistics = try VCPUStatistics()
        statistics.countMMIOExit(at: 0xd000_0004)
        statistics.countMMIOExit(at: 0xd000_0ff8)
        #expect(statistics.mmioExits[0xd000_0000] == 2)
        #expect(statistics.mmioExits.distinct == 1)
        for page in 0..<UInt64(5000) { statistics.countMMIOExit(at: 0xc000_0000 + page << 12) }
        #expect(statistics.mmioExits.distinct == VCPUStatistics.mmioPagesTracked)
        #expect(statistics.mmioExits.untracked == 5000 - UInt64(VCPUStatistics.mmioPagesTracked - 1))
        // A page already tracked keeps its own count.
        statistics.countMMIOExit(at: 0xd000_0010)
        #expect(statistics.mmioExits[0xd000_0000] == 3)
    }

    @Test("every port is counted apart up to 256 of them, colliding ones too; each count is found again and the sum is whole")
    func portsCounted() throws {
        let tally = try ExitTally(limit: VCPUStatistics.portsTracked, what: "test")
        // Every port once, 0x3f8 34 more times: all 65536 exits accounted for, 256 ports apart.
        for port in 0...UInt64(0xffff) { tally.count(port) }
        for _ in 0..<34 { tally.count(0x3f8) }
        #expect(tally.distinct == VCPUStatistics.portsTracked)
        var seen: [UInt64: UInt64] = [:]
        tally.forEach { port, count in seen[port] = count }
        #expect(seen.count == VCPUStatistics.portsTracked)
        #expect(seen.values.reduce(0, +) + tally.untracked == 0x10000 + 34)
        for (port, count) in seen { #expect(tally[port] == count) }
        #expect(tally[0x1_0000] == 0)
        // The first 256 ports seen are the ones told apart.
        #expect(Set(seen.keys) == Set(0..<UInt64(VCPUStatistics.portsTracked)))
    }
}
