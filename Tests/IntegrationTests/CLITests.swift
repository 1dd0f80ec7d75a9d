import Foundation
import Testing

/// Runs the real `tandem` executable, as a user would.
enum Tandem {
    /// $TANDEM_BIN, or the `tandem` built next to this test bundle.
    static let path: String = {
        if let override = ProcessInfo.processInfo.environment["TANDEM_BIN"] { return override }
        let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for directory in [bundle, bundle.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("tandem").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repository.appendingPathComponent(".build/debug/tandem").path
    }()

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let guestsBuilt = FileManager.default.fileExists(atPath: repository.appendingPathComponent("guest-images/build/tiny/hello.bin").path)
    static let kvmUsable = FileManager.default.isReadableFile(atPath: "/dev/kvm") && FileManager.default.isWritableFile(atPath: "/dev/kvm")

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// True when the process ended by a signal rather than exit().
        var signalled: Bool
    }

    /// Runs tandem with `arguments`; `interruptAfter` sends SIGINT after that many seconds, and
    /// SIGKILL `interruptGrace` seconds later if it is still running (a VMM that ignores the
    /// interrupt fails its test as `signalled` instead of hanging the suite); `killAfter` sends
    /// SIGKILL that many seconds after the start (for a run that must end by itself).
    static func run(_ arguments: [String], prefix: [String] = [], interruptAfter: Double? = nil, interruptGrace: Double = 15,
                    killAfter: Double? = nil, environment: [String: String]? = nil) throws -> Result {
        let process = Process()
        if prefix.isEmpty {
            process.executableURL = URL(fileURLWithPath: path)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: prefix[0])
            process.arguments = Array(prefix.dropFirst()) + [path] + arguments
        }
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        if let killAfter {
            let pid = process.processIdentifier
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: killAfter)
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
        if let delay = interruptAfter {
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGINT)
            let pid = process.processIdentifier
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: interruptGrace)
                if process.isRunning { kill(pid, SIGKILL) }
            }
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self),
                      signalled: process.terminationReason == .uncaughtSignal)
    }
}

@Suite("tandem CLI")
struct CLITests {
    @Test("--version prints the version")
    func version() throws {
        let result = try Tandem.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).range(of: #"^\d+\.\d+\.\d+$"#, options: .regularExpression) != nil)
    }

    @Test("host --json reports the facts every figure is stamped with")
    func hostJSON() throws {
        let result = try Tandem.run(["host", "--json"])
        #expect(result.status == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["schema"] as? String == "tandem.host/1")
        let virtualisation = try #require(object["virtualisation"] as? [String: Any])
        let mode = try #require(virtualisation["mode"] as? String)
        #expect(["hardware", "emulated", "none"].contains(mode))
        let flags = try #require(object["cpu_flags"] as? [String: Any])
        let kvm = try #require(object["kvm"] as? [String: Any])
        let hasExtensions = (flags["vmx"] as? Bool == true) || (flags["svm"] as? Bool == true)
        if kvm["present"] as? Bool == false { #expect(mode == "none") }
        if mode == "hardware" { #expect(hasExtensions) }
        if kvm["present"] as? Bool == true && !hasExtensions { #expect(mode == "emulated") }
        let cgroups = try #require(object["cgroups"] as? [String: Any])
        #expect(["v1", "v2", "hybrid", "none"].contains(cgroups["layout"] as? String ?? ""))
        let tools = try #require(object["tools"] as? [String: Any])
        #expect(Set(tools.keys) == ["qemu-system-x86_64", "libvirtd", "virsh", "crun", "runc"])
        #expect(object["cpu_model"] is String && object["kernel_release"] is String)
    }

    @Test("host prints one fact a line, including the virtualisation mode")
    func hostText() throws {
        let result = try Tandem.run(["host"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("virtualisation"))
        #expect(result.stdout.contains("/dev/kvm"))
        #expect(result.stdout.contains("cgroups"))
    }

    @Test("an unknown tiny guest lists the known ones", arguments: ["nope", "hello2"])
    func unknownTiny(name: String) throws {
        let result = try Tandem.run(["vm", "run", "--tiny", name])
        #expect(result.status == 125)
        #expect(result.stderr == "tandem: error: unknown tiny guest '\(name)': known ones are hello, hello16, compute, exit, spin, triplefault, flood, wild, echo, ticker, blk (or give a path to a flat binary)\n")
        #expect(result.stdout.isEmpty)
    }

    @Test("bad images and memory sizes: one clear line and status 125")
    func badInput() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-cli-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let empty = directory.appendingPathComponent("empty.bin")
        FileManager.default.createFile(atPath: empty.path, contents: Data())
        let big = directory.appendingPathComponent("big.bin")
        FileManager.default.createFile(atPath: big.path, contents: Data(repeating: 0x90, count: 2 << 20))
        let cases: [([String], String)] = [
            (["--tiny", "/no/such/guest.bin"], "guest image /no/such/guest.bin does not exist"),
            (["--tiny", directory.path], "guest image \(directory.path) is a directory, not a flat binary"),
            (["--tiny", empty.path], "guest image \(empty.path) is empty"),
            (["--tiny", big.path, "--memory", "1"], "guest image \(big.path) is 2097152 bytes, but only 983040 bytes of guest memory lie above its load address 0x10000: raise --memory or shrink the image"),
            (["--tiny", big.path, "--memory", "0"], "--memory 0: guest memory must be at least 1 MiB"),
            (["--tiny", big.path, "--memory", "4096"], "--memory 4096: a tiny guest's RAM ends below the 32-bit MMIO hole: at most 3072 MiB"),
            (["--tiny", big.path, "--timeout=-1"], "--timeout -1.0: must be 0 (no limit) or a positive number of seconds"),
            (["--tiny", big.path, "--kvm-device", "/no/kvm"], "/no/kvm does not exist: KVM is not available on this host. Load kvm_intel or kvm_amd (enable VT-x/AMD-V in the firmware, or nested virtualisation for a VM), or use a TCG backend."),
            (["--tiny", big.path, "--kvm-device", "/dev/null"], "/dev/null is not a KVM device: ioctl KVM_GET_API_VERSION(/dev/null): Inappropriate ioctl for device (ENOTTY)"),
        ]
        for (arguments, message) in cases {
            let result = try Tandem.run(["vm", "run"] + arguments)
            #expect(result.status == 125, "\(arguments)")
            #expect(result.stderr == "tandem: error: \(message)\n", "\(arguments)")
        }
        // Nothing was left behind in the directory the inputs came from.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["big.bin", "empty.bin"])
    }

    @Test("a user without access to /dev/kvm is told how to get it",
          .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root and setpriv to drop to an unprivileged user"))
    func permissionDenied() throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: "/dev/kvm")
        let permissions = (attributes[.posixPermissions] as? Int) ?? 0
        try #require(permissions & 0o006 == 0, "/dev/kvm is world-accessible here; nothing to deny")
        let result = try Tandem.run(["vm", "run", "--tiny", "hello"],
                                    prefix: ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix("tandem: error: /dev/kvm is not accessible to this user (EACCES): add the user to the 'kvm' group"))
    }
}

@Suite("tandem image build")
struct ImageBuildTests {
    @Test("writes the initramfs (byte-identical when rebuilt) and the same image as a rootfs directory",
          .enabled(if: Tandem.guestsBuilt && FileManager.default.fileExists(atPath: "/bin/busybox"), "needs make guests and busybox-static"))
    func build() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-image-cli-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let first = try Tandem.run(["image", "build", "--out", out])
        #expect(first.status == 0, "\(first.stderr)")
        let bytes = try #require(FileManager.default.contents(atPath: out + "/initramfs.cpio"))
        #expect(first.stdout == "\(out)/initramfs.cpio: \(bytes.count) bytes, \(first.stdout.split(separator: " ")[3]) entries\n"
                + "\(out)/rootfs: the same image as a directory (containers' lower layer)\n")
        let second = try Tandem.run(["image", "build", "--out", out])
        #expect(second.status == 0)
        #expect(FileManager.default.contents(atPath: out + "/initramfs.cpio") == bytes)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["initramfs.cpio", "rootfs"])
        // The rootfs holds the archive's files and links (no device nodes), every mtime 0.
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: out + "/rootfs/bin/sh") == "busybox")
        #expect(FileManager.default.isExecutableFile(atPath: out + "/rootfs/init"))
        let attributes = try FileManager.default.attributesOfItem(atPath: out + "/rootfs/init")
        #expect((attributes[.modificationDate] as? Date)?.timeIntervalSince1970 == 0)
        #expect(!FileManager.default.fileExists(atPath: out + "/rootfs/dev/console"))
    }

    @Test("missing inputs: one line, status 125, no file written")
    func missingInputs() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-image-bad-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let result = try Tandem.run(["image", "build", "--programs", "/no/such/dir", "--out", out])
        #expect(result.status == 125)
        #expect(result.stderr == "tandem: error: missing tandem-init (run make guests): /no/such/dir/tandem-init\n")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
