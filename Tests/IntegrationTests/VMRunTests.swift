import Foundation
import Testing

@Suite("tandem vm run --tiny on real /dev/kvm",
       .enabled(if: Tandem.kvmUsable && Tandem.guestsBuilt, "needs a usable /dev/kvm and the tiny guests (make guests)"))
struct VMRunTests {
    @Test("hello: its exact output on stdout, nothing on stderr, status 0")
    func hello() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "hello"])
        #expect(result.stdout == "Hello from a tiny Tandem microVM!\n")
        #expect(result.stderr.isEmpty)
        #expect(result.status == 0)
    }

    @Test("a guest's exit status 3 is tandem's exit status")
    func exitThree() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "exit", "--arg", "3"])
        #expect(result.status == 3)
        #expect(result.stdout == "exiting with status 3\n")
    }

    @Test("a flat binary given by path runs, in the mode asked for")
    func byPath() throws {
        let path = Tandem.repository.appendingPathComponent("guest-images/build/tiny/hello16.bin").path
        let result = try Tandem.run(["vm", "run", "--tiny", path, "--mode", "real"])
        #expect(result.status == 0)
        #expect(result.stdout == "Hello from a tiny Tandem microVM in real mode!\n")
    }

    @Test("the countdown example (examples/countdown.S) runs by path",
          .enabled(if: FileManager.default.fileExists(atPath: Tandem.repository.appendingPathComponent("examples/build/countdown.bin").path),
                   "needs make guests to build examples/"))
    func example() throws {
        let path = Tandem.repository.appendingPathComponent("examples/build/countdown.bin").path
        let result = try Tandem.run(["vm", "run", "--tiny", path, "--arg", "3"])
        #expect(result.status == 0)
        #expect(result.stdout == "3\n2\n1\n0\n")
    }

    @Test("an endless loop is stopped by --timeout with a clear message and status 124")
    func timeout() throws {
        let started = Date()
        let result = try Tandem.run(["vm", "run", "--tiny", "spin", "--timeout", "0.3"])
        #expect(result.status == 124)
        #expect(result.stderr == "tandem: guest stopped: it ran past --timeout 0.3 s\n")
        #expect(Date().timeIntervalSince(started) < 10)
    }

    @Test("a triple fault is reported with the exit and RIP, status 126")
    func tripleFault() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "triplefault"])
        #expect(result.status == 126)
        #expect(result.stderr == "tandem: guest crashed: KVM_EXIT_SHUTDOWN (triple fault) on vCPU 0 at guest RIP 0x10000\n")
    }

    @Test("Ctrl-C stops a running guest cleanly: status 130, not a crash")
    func interrupt() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "spin"], interruptAfter: 0.5)
        #expect(!result.signalled)
        #expect(result.status == 130)
        #expect(result.stderr == "tandem: guest stopped by signal 2\n")
    }

    @Test("a console flood into a pipe nobody drains fast still ends on time")
    func flood() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "flood", "--timeout", "0.5"])
        #expect(result.status == 124)
        #expect(result.stdout.hasPrefix("flood flood"))
    }

    @Test("--json: one JSON document on stdout with phases, the console on stderr")
    func json() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "compute", "--arg", "1000", "--json"])
        #expect(result.status == 0)
        #expect(result.stderr == "compute n=1000 primes=168 sum=76127\n")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["schema"] as? String == "tandem.vm-run/1")
        #expect(["hardware", "emulated"].contains(object["virtualisation"] as? String ?? ""))
        #expect(object["exit_status"] as? Int == 0)
        let phases = try #require(object["phases_ms"] as? [String: Any])
        let ready = try #require(phases["ready"] as? Double)
        let exit = try #require(phases["exit"] as? Double)
        let firstRun = try #require(phases["first_run"] as? Double)
        #expect(0 < firstRun && firstRun <= ready && ready <= exit)
        let monotonic = try #require(object["monotonic_ns"] as? [String: Any])
        #expect((monotonic["ready"] as? UInt64 ?? 0) > (monotonic["process_start"] as? UInt64 ?? .max))
        #expect((object["peak_rss_bytes"] as? Int ?? 0) > 0)
        #expect(object["console_tail"] as? String == "compute n=1000 primes=168 sum=76127\n")
    }

    @Test("wild: random ports and MMIO never crash the VMM")
    func wild() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "wild", "--json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect((object["unknown_mmio_accesses"] as? Int ?? 0) >= 100)  // 50 writes + 50 reads (an emulator may add a read)
    }

    @Test("the shared compute source gives the same answer as a host program and as a tiny guest")
    func computeMatchesHost() throws {
        let host = Tandem.repository.appendingPathComponent("guest-images/build/bin/compute")
        let process = Process()
        process.executableURL = host
        process.arguments = ["10000"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let guest = try Tandem.run(["vm", "run", "--tiny", "compute", "--arg", "10000"])
        let hostFigures = output.split(separator: " ").prefix(4).joined(separator: " ")
        #expect(guest.stdout == hostFigures + "\n")
    }
}
