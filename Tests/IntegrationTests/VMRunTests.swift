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

    @Test("the exit status does not wait for the VM's teardown, and the process left to do it ends by itself")
    func teardownHolderEnds() throws {
        // A --timeout no other test uses: the holder shares the VMM's memory, so its command line
        // is the VMM's (a zombie's is empty).
        let marker = "7.125"
        let result = try Tandem.run(["vm", "run", "--tiny", "exit", "--arg", "5", "--timeout", marker])
        #expect(result.status == 5)
        #expect(result.stdout == "exiting with status 5\n")
        func holders() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).filter { pid in
                guard pid.allSatisfy(\.isNumber), let arguments = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                return String(decoding: arguments, as: UTF8.self).hasSuffix("vm\0run\0--tiny\0exit\0--arg\05\0--timeout\0\(marker)\0")
            }
        }
        let deadline = Date().addingTimeInterval(5)
        while !holders().isEmpty, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(holders().isEmpty, "a process holding the finished VM outlived tandem by 5 s")
    }

    @Test("an endless loop is stopped by --timeout with a clear message and status 124")
    func timeout() throws {
        let started = Date()
        let result = try Tandem.run(["vm", "run", "--tiny", "spin", "--timeout", "0.3"], killAfter: 15)
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

    /// Runs tandem on a pseudo-terminal (util-linux `script`), typing `input` after `delay` s.
    static func onTerminal(_ arguments: [String], input: [String], delay: Double = 0.5) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/script")
        process.arguments = ["-qec", ([Tandem.path] + arguments).joined(separator: " "), "/dev/null"]
        let input = input.map { Data($0.utf8) }
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        for chunk in input {
            Thread.sleep(forTimeInterval: delay)
            stdin.fileHandleForWriting.write(chunk)
        }
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("keys typed on a terminal reach the guest's UART; the terminal is restored",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs util-linux script"))
    func terminalInput() throws {
        let run = try Self.onTerminal(["vm", "run", "--tiny", "echo"], input: ["hey", "q"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("console input goes to the guest; Ctrl-A x stops the VM"))
        #expect(run.output.contains("HEY"))
        #expect(run.output.contains("echo: bye"))
    }

    @Test("Ctrl-A x stops a guest that reads the terminal: status 130",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs util-linux script"))
    func terminalEscape() throws {
        let run = try Self.onTerminal(["vm", "run", "--tiny", "echo"], input: ["a\u{01}x"])
        #expect(run.status == 130, "\(run.output)")
        #expect(run.output.contains("A"))
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

    @Test("--json counts the exits by cause: one per console byte at COM1's data port, all adding up")
    func exitsByCause() throws {
        let result = try Tandem.run(["vm", "run", "--tiny", "hello", "--json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let causes = try #require(object["exits_by_cause"] as? [String: Any])
        let ports = try #require(causes["port_io"] as? [String: Int])
        let mmio = try #require(causes["mmio"] as? [String: Int])
        // hello writes its 34 bytes one `outb` each; the rest are LSR polls and the READY/EXIT ports.
        #expect(ports["0x3f8"] == "Hello from a tiny Tandem microVM!\n".utf8.count)
        #expect(ports["0x500"] == 1)
        let counted = ports.values.reduce(0, +) + (causes["port_io_other_ports"] as? Int ?? -1) + mmio.values.reduce(0, +)
            + (causes["mmio_other_pages"] as? Int ?? -1) + (causes["halt"] as? Int ?? -1) + (causes["interrupted"] as? Int ?? -1)
            + (causes["other"] as? Int ?? -1)
        #expect(counted == object["exits"] as? Int)
        // wild's unbacked MMIO is counted per 4 KiB page.
        let wild = try Tandem.run(["vm", "run", "--tiny", "wild", "--json"])
        let wildObject = try #require(try JSONSerialization.jsonObject(with: Data(wild.stdout.utf8)) as? [String: Any])
        let wildMMIO = try #require((wildObject["exits_by_cause"] as? [String: Any])?["mmio"] as? [String: Int])
        #expect(wildMMIO.values.reduce(0, +) >= 100)
        #expect(wildMMIO.keys.allSatisfy { UInt64($0.dropFirst(2), radix: 16).map { $0 & 0xfff == 0 } ?? false })
    }

    @Test("a Linux guest's first KVM_RUN does not wait for its initrd: the copy completes after it, and all of it is in RAM",
          .enabled(if: Lab.imageBuilt && FileManager.default.fileExists(atPath: Lab.microVMKernel) && getuid() == 0,
                   "needs the guest image and kernel (make image, make kernel) and root (userfaultfd for kernel faults)"))
    func initrdAfterFirstRun() throws {
        let initrd = Tandem.repository.appendingPathComponent("guest-images/build/image/initramfs.cpio").path
        let size = try #require(try FileManager.default.attributesOfItem(atPath: initrd)[.size] as? Int)
        // Emulated KVM runs a Linux kernel for minutes: the setup is what is looked at here.
        let result = try Tandem.run(["vm", "run", "--kernel", Lab.microVMKernel, "--initrd", initrd,
                                     "--allow-emulated", "--timeout", "0.5", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let phases = try #require(object["monotonic_ns"] as? [String: Any])
        let firstRun = try #require(phases["first_run"] as? UInt64)
        let complete = try #require(phases["image_complete"] as? UInt64)
        let loaded = try #require(phases["image_loaded"] as? UInt64)
        #expect(loaded <= firstRun && firstRun <= complete)
        // The whole initrd and the kernel are resident guest RAM by the end.
        #expect((object["guest_ram_touched_bytes"] as? Int ?? 0) >= size)
        #expect((object["outcome"] as? [String: Any])?["kind"] as? String == "timed_out")
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

/// `--drive`: a raw disk as virtio-blk over virtio-mmio on Tandem's VMM, driven by the tiny `blk`
/// guest (a driver written from the virtio spec, polling): the whole path — the guest's MMIO
/// exits, the bus, the transport, the queue's ioeventfd, the device thread and the disk file — on
/// real /dev/kvm, no Linux needed.
@Suite("tandem vm run --drive: virtio-blk through the VMM's MMIO path",
       .enabled(if: Tandem.kvmUsable && Tandem.guestsBuilt, "needs /dev/kvm and make guests"))
struct VMDriveTests {
    static func image(_ name: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-drive-\(UUID().uuidString.prefix(8))-\(name)").path
        var bytes = Data(count: 64 * 512)
        bytes.replaceSubrange(0..<4, with: [0xca, 0xfe, 0xba, 0xbe])
        try bytes.write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("the guest writes sector 1 and reads it and sector 0 back; the host file holds what it wrote")
    func readWrite() throws {
        let disk = try Self.image("rw")
        defer { unlink(disk) }
        let result = try Tandem.run(["vm", "run", "--tiny", "blk", "--drive", disk, "--timeout", "60", "--json"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains("blk: capacity=64 id=tandem-0 write=0 read=0 sector0=cafebabe match=yes"), "\(result.stderr)")
        // The four notifications went through the queue's ioeventfd to the device thread: none
        // exited to the VMM's MMIO path.
        let report = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let device = try #require((report["devices"] as? [[String: Any]])?.first, "\(result.stdout)")
        #expect(device["requests"] as? Int == 4 && device["notify_exits"] as? Int == 0 && device["failure"] is NSNull, "\(device)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: disk))
        #expect(Array(bytes[512..<1024]) == (0..<512).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }, "the guest's sector is not in the file")
    }

    @Test("a read-only drive: the write fails in the guest with IOERR and the file is unchanged")
    func readOnly() throws {
        let disk = try Self.image("ro")
        defer { unlink(disk) }
        let before = try Data(contentsOf: URL(fileURLWithPath: disk))
        let result = try Tandem.run(["vm", "run", "--tiny", "blk", "--drive", disk + ",ro", "--arg", "1", "--timeout", "60"])
        #expect(result.status == 0, "\(result.stdout) \(result.stderr)")
        #expect(result.stdout.contains("write=1 read=0 sector0=cafebabe match=no"), "\(result.stdout)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: disk)) == before)
    }

    @Test("--net tap: the tap Tandem made is gone when the VMM is SIGKILLed mid-run (nothing for a later run to sweep)",
          .enabled(if: FileManager.default.fileExists(atPath: "/dev/net/tun") && getuid() == 0, "needs /dev/net/tun and root"))
    func tapGoneAfterKill() throws {
        let before = Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? [])
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["vm", "run", "--tiny", "spin", "--net", "tap", "--timeout", "60"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var made: String?
        for _ in 0..<100 where made == nil {
            Thread.sleep(forTimeInterval: 0.05)
            made = Set((try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/net")) ?? []).subtracting(before).first { $0.hasPrefix("tandem") }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let tap = try #require(made, "the run made no tandemN interface")
        var gone = false
        for _ in 0..<40 where !gone {
            gone = !FileManager.default.fileExists(atPath: "/sys/class/net/\(tap)")
            if !gone { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(gone, "\(tap) outlived the killed VMM")
    }

    @Test("--vsock PATH: the socket is there while the VM runs and gone after; a SIGKILLed run's socket is replaced by the next run, which removes it; a run refused after making it leaves none")
    func vsockSocketFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-vsock-\(UUID().uuidString.prefix(8)).sock").path
        defer { unlink(path) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = ["vm", "run", "--tiny", "spin", "--vsock", path, "--timeout", "60"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var made = false
        for _ in 0..<100 where !made {
            Thread.sleep(forTimeInterval: 0.05)
            made = FileManager.default.fileExists(atPath: path)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(made, "the run made no socket at \(path)")
        // A killed VMM cannot remove its socket: the next run with the same path takes it over.
        let next = try Tandem.run(["vm", "run", "--tiny", "hello", "--vsock", path, "--json"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stdout.contains("\"virtio-vsock (\(path))\""), "the device is in the run report")
        #expect(!FileManager.default.fileExists(atPath: path), "the socket outlived its run")
        // Refused after the socket was made (an unknown guest, too much memory): nothing left.
        for arguments in [["--tiny", "nosuchguest"], ["--tiny", "hello", "--memory", "999999"]] {
            let refused = try Tandem.run(["vm", "run"] + arguments + ["--vsock", path])
            #expect(refused.status == 125 && !FileManager.default.fileExists(atPath: path), "\(arguments): \(refused.stderr)")
        }
    }

    @Test("no drive: the guest finds no device; a bad --drive is refused before the VM starts, named")
    func refusals() throws {
        let none = try Tandem.run(["vm", "run", "--tiny", "blk", "--timeout", "60"])
        #expect(none.status == 1 && none.stdout.contains("no virtio-mmio device"), "\(none.stdout)")
        let fifo = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-drive-fifo-\(UUID().uuidString.prefix(8))").path
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        for (drive, says) in [("/nonexistent/disk.img", "--drive /nonexistent/disk.img: /nonexistent/disk.img does not exist"),
                              (fifo, "is not a regular file"), ("/tmp,rw", "--drive /tmp,rw: must be PATH or PATH,ro"),
                              ("/tmp", "--drive /tmp: /tmp is a directory")] {
            let result = try Tandem.run(["vm", "run", "--tiny", "blk", "--drive", drive, "--timeout", "20"], prefix: ["/usr/bin/timeout", "30"])
            #expect(result.status == 125 && result.stderr.contains(says), "\(drive): \(result.status) \(result.stderr)")
        }
    }
}

/// `tandem vm run --api-sock`, `tandem vm snapshot|restore|pause|resume|describe`, as a user runs them.
@Suite("microVM control socket and snapshots through the CLI",
       .enabled(if: Tandem.kvmUsable && Tandem.guestsBuilt, "needs a usable /dev/kvm and the tiny guests (make guests)"))
struct VMSnapshotCLITests {
    static func temporaryDirectory() throws -> URL {
        let url = URL(fileURLWithPath: "/tmp/tandem-snapshot-cli-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Starts `tandem vm run ARGS` in the background; its stdout and stderr go to files.
    static func start(_ arguments: [String], output: URL, in directory: URL? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Tandem.path)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        FileManager.default.createFile(atPath: output.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = process.standardOutput
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func waitForSocket(_ path: String, of process: Process) {
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, process.isRunning {
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFSOCK { return }
            usleep(2000)
        }
    }

    @Test("snapshot a running ticker with a disk given by a relative path, let it finish, restore it from elsewhere: the same checksum; the socket file goes with the run")
    func snapshotRestore() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("vm.sock").path
        let output = directory.appendingPathComponent("run.txt")
        try Data(count: 1 << 20).write(to: directory.appendingPathComponent("disk.img"))
        let run = try Self.start(["vm", "run", "--tiny", "ticker", "--arg", "1500", "--timeout", "60", "--api-sock", socket, "--drive", "disk.img,ro"],
                                 output: output, in: directory)
        Self.waitForSocket(socket, of: run)
        let describe = try Tandem.run(["vm", "describe", socket], killAfter: 30)
        #expect(describe.status == 0, "\(describe.stderr)")
        #expect(describe.stdout.contains("\"state\": \"running\""))
        let snapshot = try Tandem.run(["vm", "snapshot", socket, "--out", directory.appendingPathComponent("snap").path], killAfter: 30)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stdout.contains("\"memory_bytes\": 16777216"))
        #expect(snapshot.stdout.contains("\"path\": \"\(directory.appendingPathComponent("disk.img").path)\""), "the disk by its absolute path: \(snapshot.stdout)")
        run.waitUntilExit()
        #expect(run.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: socket), "the control socket's file goes with the run")
        let unbroken = try String(contentsOf: output, encoding: .utf8)
        let checksum = try #require(unbroken.split(separator: "\n").last { $0.hasPrefix("ticker: ") })

        let restored = try Tandem.run(["vm", "restore", directory.appendingPathComponent("snap").path, "--json"], killAfter: 60)
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stderr.split(separator: "\n").last == checksum)
        let report = try #require(try JSONSerialization.jsonObject(with: Data(restored.stdout.utf8)) as? [String: Any])
        #expect(report["restored_from"] as? String == directory.appendingPathComponent("snap").path)
        let phases = try #require(report["phases_ms"] as? [String: Any])
        #expect(phases["ready"] is Double, "the first READY after the restore is its ready phase")
    }

    @Test("pause and resume from the command line; a socket left by a killed VMM is replaced by the next run")
    func pauseResumeAndStaleSocket() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let socket = directory.appendingPathComponent("vm.sock").path
        let killed = try Self.start(["vm", "run", "--tiny", "spin", "--api-sock", socket], output: directory.appendingPathComponent("killed.txt"))
        Self.waitForSocket(socket, of: killed)
        let pause = try Tandem.run(["vm", "pause", socket], killAfter: 30)
        #expect(pause.status == 0 && pause.stdout.contains("\"state\":\"paused\""), "status \(pause.status): \(pause.stdout) \(pause.stderr)")
        #expect(try Tandem.run(["vm", "describe", socket], killAfter: 30).stdout.contains("\"state\": \"paused\""))
        let resume = try Tandem.run(["vm", "resume", socket], killAfter: 30)
        #expect(resume.status == 0 && resume.stdout.contains("\"state\":\"running\""))
        let again = try Tandem.run(["vm", "resume", socket], killAfter: 30)
        #expect(again.status == 125 && again.stderr == "tandem: error: \(socket): the VM is not paused\n")
        kill(killed.processIdentifier, SIGKILL)
        killed.waitUntilExit()
        #expect(FileManager.default.fileExists(atPath: socket), "a SIGKILLed VMM cannot remove its socket file")

        let next = try Tandem.run(["vm", "run", "--tiny", "hello", "--api-sock", socket], killAfter: 30)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(!FileManager.default.fileExists(atPath: socket))
        let nobody = try Tandem.run(["vm", "pause", socket], killAfter: 30)
        #expect(nobody.status == 125 && nobody.stderr.contains("connect(\(socket) (is a microVM running with --api-sock \(socket)?))"), "\(nobody.stderr)")
    }

    @Test("restore refuses a damaged snapshot by name and leaves nothing running", arguments: ["missing", "damaged", "empty"])
    func damaged(kind: String) throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let snapshot = directory.appendingPathComponent("snap")
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        switch kind {
        case "damaged": try Data("TANDEMVM\u{2}\0\0\0garbage-garbage-garbage".utf8).write(to: snapshot.appendingPathComponent("state"))
        case "empty": try Data().write(to: snapshot.appendingPathComponent("state"))
        default: break
        }
        let result = try Tandem.run(["vm", "restore", snapshot.path], killAfter: 30)
        #expect(result.status == 125)
        let expected = [
            "missing": "tandem: error: snapshot \(snapshot.path)/state: is missing or not a regular file\n",
            "damaged": "tandem: error: snapshot \(snapshot.path)/state: truncated or padded: the header says 3271134372315685223 payload bytes, the file holds 7\n",
            "empty": "tandem: error: snapshot \(snapshot.path)/state: not a Tandem snapshot state file (no TANDEMVM magic)\n",
        ][kind]
        #expect(result.stderr == expected)
        #expect(result.stdout.isEmpty)
    }
}
