import Foundation
@testable import GuestImages
import HostOS
import Testing

@Suite("cpio newc writer")
struct CpioTests {
    @Test("one file: the exact header, name and data padding, then the trailer")
    func headerBytes() {
        let archive = CpioWriter.archive([ImageEntry(path: "a", kind: .file([0x41, 0x42, 0x43]), permissions: 0o644)])
        let header = String(decoding: archive[0..<110], as: UTF8.self)
        #expect(header == "070701" + "00000001" + "000081A4" + "00000000" + "00000000" + "00000001" + "00000000"
            + "00000003" + "00000000" + "00000000" + "00000000" + "00000000" + "00000002" + "00000000")
        #expect(Array(archive[110..<112]) == [0x61, 0])          // "a\0", then pad 110+2 to 4
        #expect(Array(archive[112..<116]) == [0x41, 0x42, 0x43, 0]) // data padded to 4
        #expect(String(decoding: archive[116..<122], as: UTF8.self) == "070701")
        #expect(archive.count % 4 == 0)
        #expect(String(decoding: archive.suffix(16), as: UTF8.self).contains("TRAILER!!!"))
    }

    @Test("directories come before their contents, whatever the input order")
    func ordering() {
        let entries = [
            ImageEntry(path: "bin/sh", kind: .symlink("busybox"), permissions: 0o777),
            ImageEntry(path: "bin-extra", kind: .directory, permissions: 0o755),
            ImageEntry(path: "bin", kind: .directory, permissions: 0o755),
        ]
        #expect(CpioWriter.sorted(entries).map(\.path) == ["bin", "bin/sh", "bin-extra"])
    }

    static let sample: [ImageEntry] = [
        ImageEntry(path: "bin", kind: .directory, permissions: 0o755),
        ImageEntry(path: "bin/hello", kind: .file(Array("#!/bin/sh\necho hi\n".utf8)), permissions: 0o755),
        ImageEntry(path: "bin/link", kind: .symlink("hello"), permissions: 0o777),
        ImageEntry(path: "dev", kind: .directory, permissions: 0o755),
        ImageEntry(path: "dev/null", kind: .characterDevice(major: 1, minor: 3), permissions: 0o666),
        ImageEntry(path: "empty", kind: .file([]), permissions: 0o600),
    ]

    func run(_ tool: String, _ arguments: [String], input: [UInt8], directory: String? = nil) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input))
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("GNU cpio lists it in order", .enabled(if: Files.which("cpio") != nil, "needs cpio (apt-get install cpio)"))
    func gnuCpioList() throws {
        let (status, output) = try run(Files.which("cpio")!, ["-t", "--quiet"], input: CpioWriter.archive(Self.sample))
        #expect(status == 0)
        #expect(output.split(separator: "\n") == ["bin", "bin/hello", "bin/link", "dev", "dev/null", "empty"])
    }

    @Test("busybox cpio lists it too", .enabled(if: Files.which("busybox") != nil, "needs busybox"))
    func busyboxList() throws {
        let (status, output) = try run(Files.which("busybox")!, ["cpio", "-t"], input: CpioWriter.archive(Self.sample))
        #expect(status == 0)
        #expect(output.split(separator: "\n").prefix(6) == ["bin", "bin/hello", "bin/link", "dev", "dev/null", "empty"])
    }

    @Test("extracting it gives back contents, links, device nodes and modes",
          .enabled(if: Files.which("cpio") != nil && getuid() == 0, "needs cpio and root (device nodes)"))
    func roundTrip() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-cpio-\(getpid())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (status, output) = try run(Files.which("cpio")!, ["-id", "--quiet"], input: CpioWriter.archive(Self.sample), directory: directory)
        #expect(status == 0, "\(output)")
        #expect(FileManager.default.contents(atPath: directory + "/bin/hello") == Data("#!/bin/sh\necho hi\n".utf8))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: directory + "/bin/link") == "hello")
        var info = stat()
        #expect(stat(directory + "/dev/null", &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFCHR)
        #expect(info.st_rdev == (1 << 8 | 3))  // makedev(1, 3): a macro Swift does not import
        #expect(stat(directory + "/bin/hello", &info) == 0 && info.st_mode & 0o7777 == 0o755)
        #expect(stat(directory + "/empty", &info) == 0 && info.st_size == 0 && info.st_mode & 0o7777 == 0o600)
    }
}

@Suite("The guest image")
struct GuestImageTests {
    /// A programs directory with stand-ins for tandem-init and the workloads.
    func fixture() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-image-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Files.write(directory + "/tandem-init", Array("init".utf8), mode: 0o755)
        for workload in GuestImage.workloads { try Files.write(directory + "/" + workload, Array(workload.utf8), mode: 0o755) }
        return directory
    }

    @Test("has /init, busybox applets as relative links, workloads and console", .enabled(if: Files.which("busybox") != nil, "needs busybox"))
    func contents() throws {
        let programs = try fixture()
        defer { try? FileManager.default.removeItem(atPath: programs) }
        let image = try GuestImage.assemble(.init(programs: programs, busybox: Files.which("busybox")!))
        let byPath = Dictionary(uniqueKeysWithValues: image.entries.map { ($0.path, $0) })
        #expect(byPath["init"]?.kind == .file(Array("init".utf8)))
        #expect(byPath["bin/sh"]?.kind == .symlink("busybox"))
        #expect(byPath["bin/tandem-init"]?.kind == .symlink("../init"))
        #expect(byPath["bin/compute"]?.kind == .file(Array("compute".utf8)))
        #expect(byPath["dev/console"]?.kind == .characterDevice(major: 5, minor: 1))
        #expect(byPath["tmp"]?.permissions == 0o1777)
        #expect(image.entries.map(\.path) == CpioWriter.sorted(image.entries).map(\.path))
    }

    @Test("unchanged inputs give byte-identical archives", .enabled(if: Files.which("busybox") != nil, "needs busybox"))
    func reproducible() throws {
        let programs = try fixture()
        defer { try? FileManager.default.removeItem(atPath: programs) }
        let first = try GuestImage.assemble(.init(programs: programs, busybox: Files.which("busybox")!)).initramfs()
        let second = try GuestImage.assemble(.init(programs: programs, busybox: Files.which("busybox")!)).initramfs()
        #expect(first == second)
    }

    @Test("a missing input is named")
    func missing() throws {
        #expect(throws: ImageError.self) { try GuestImage.assemble(.init(programs: "/no/such/dir")) }
        do {
            _ = try GuestImage.assemble(.init(programs: "/no/such/dir"))
        } catch {
            #expect(error.description == "missing tandem-init (run make guests): /no/such/dir/tandem-init")
        }
    }
}
