import Foundation
import Testing

enum Lab {
    static let kernel: String? = (try? FileManager.default.contentsOfDirectory(atPath: "/boot"))?
        .filter { $0.hasPrefix("vmlinuz-") && $0.hasSuffix("-cloud-amd64") }.sorted().last.map { "/boot/" + $0 }
    static let qemu = FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-system-x86_64")
    static let releaseBuilt = FileManager.default.isExecutableFile(atPath: Tandem.repository.appendingPathComponent(".build/release/tandem").path)
    static let imageBuilt = FileManager.default.fileExists(atPath: Tandem.repository.appendingPathComponent("guest-images/build/image/initramfs.cpio").path)

    /// Runs scripts/lab-nested.sh and returns what L1 printed.
    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = Tandem.repository.appendingPathComponent("scripts/lab-nested.sh")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output
    }
}

@Suite("Linux guests: input errors (no boot needed)")
struct LinuxInputTests {
    @Test("a kernel that is not a bzImage is named, status 125")
    func notBzImage() throws {
        let path = Tandem.repository.appendingPathComponent("guest-images/build/tiny/hello.bin").path
        let result = try Tandem.run(["vm", "run", "--kernel", path])
        #expect(result.status == 125)
        #expect(result.stderr.hasPrefix("tandem: error: kernel \(path) is not a bzImage: it is "))
    }

    @Test("missing kernel or initrd files are named")
    func missingFiles() throws {
        let kernel = try Tandem.run(["vm", "run", "--kernel", "/no/vmlinuz"])
        #expect(kernel.status == 125 && kernel.stderr == "tandem: error: kernel /no/vmlinuz does not exist\n")
        let initrd = try Tandem.run(["vm", "run", "--kernel", "/no/vmlinuz", "--initrd", "/no/initrd"])
        #expect(initrd.status == 125 && initrd.stderr == "tandem: error: kernel /no/vmlinuz does not exist\n")
    }

    @Test("vCPU counts and memory Tandem cannot give are refused", .enabled(if: Lab.kernel != nil, "needs linux-image-cloud-amd64"))
    func limits() throws {
        let zero = try Tandem.run(["vm", "run", "--kernel", Lab.kernel!, "--vcpus", "0"])
        #expect(zero.status == 125 && zero.stderr.hasPrefix("tandem: error: --vcpus 0: must be between 1 and this host's"))
        let many = try Tandem.run(["vm", "run", "--kernel", Lab.kernel!, "--vcpus", "999"])
        #expect(many.status == 125)
        let small = try Tandem.run(["vm", "run", "--kernel", Lab.kernel!, "--memory", "16"])
        #expect(small.stderr == "tandem: error: --memory 16: a Linux guest needs at least 64 MiB\n")
    }
}

@Suite("Linux microVM in the nested lab (QEMU TCG + kvm-amd)",
       .enabled(if: Lab.kernel != nil && Lab.qemu && Lab.releaseBuilt && Lab.imageBuilt,
                "needs linux-image-cloud-amd64, qemu-system-x86, make build and make image"))
struct NestedLabTests {
    @Test("our VMM boots the cloud kernel to tandem-init's ready marker and a clean exit 0")
    func bootHello() throws {
        let output = try Lab.run(["--workload", "hello", "--cmdline", "quiet"])
        #expect(output.contains("TANDEM-READY"), "\(output.suffix(3000))")
        #expect(output.contains("hello from tandem-init"))
        #expect(output.contains("TANDEM-RESULT workload=hello status=0"))
        #expect(output.contains("LAB-STATUS 0"))
        let json = try #require(output.split(whereSeparator: \.isNewline).first { $0.hasPrefix("LAB-JSON ") }?.dropFirst(9))  // the serial line ends in \r\n, one Character
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let phases = try #require(object["phases_ms"] as? [String: Any])
        #expect((phases["ready"] as? Double ?? 0) > 0)
        #expect(object["exit_status"] as? Int == 0)
    }

    @Test("the workload's exit status comes back through the EXIT port")
    func exitStatus() throws {
        let output = try Lab.run(["--workload", "false", "--cmdline", "quiet"])
        #expect(output.contains("TANDEM-RESULT workload=false status=1"), "\(output.suffix(2000))")
        #expect(output.contains("LAB-STATUS 1"))
    }
}
