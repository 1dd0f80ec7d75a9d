import Foundation
import Testing

/// The release `tandem` that `make build` links (fully static, with lld, in launch order): the other
/// integration tests run the debug build, so this is where the release link itself is checked.
enum ReleaseTandem {
    static let path = Tandem.repository.appendingPathComponent(".build/release/tandem").path
    static let built = FileManager.default.isExecutableFile(atPath: path)
    static let orderFile = Tandem.repository.appendingPathComponent("scripts/tandem.order").path

    /// Function symbols of the release binary (nm types t, T, w, W) and their addresses.
    static func functionAddresses() throws -> [String: UInt64] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nm")
        process.arguments = [path]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        var addresses: [String: UInt64] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, ["t", "T", "w", "W"].contains(fields[1]),
                  let address = UInt64(fields[0], radix: 16) else { continue }
            addresses[String(fields[2])] = address
        }
        return addresses
    }
}

@Suite("the release tandem (make build)",
       .enabled(if: ReleaseTandem.built, "needs .build/release/tandem (make build; make test builds it)"))
struct ReleaseBuildTests {
    @Test("runs a tiny guest: its output, status 0",
          .enabled(if: Tandem.kvmUsable && Tandem.guestsBuilt, "needs a usable /dev/kvm and the tiny guests (make guests)"))
    func tinyGuest() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ReleaseTandem.path)
        process.arguments = ["vm", "run", "--tiny", "hello"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(String(decoding: stdout, as: UTF8.self) == "Hello from a tiny Tandem microVM!\n")
    }

    /// The kernel maps 64 KiB around each page fault of a file mapping; functions laid out in the
    /// order the launch paths run them are what keeps `tandem vm run`'s resident text small.
    @Test("is linked in launch order: the first 200 functions of scripts/tandem.order lie within 1 MiB")
    func launchOrder() throws {
        let addresses = try ReleaseTandem.functionAddresses()
        let order = try String(contentsOfFile: ReleaseTandem.orderFile, encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.hasPrefix("#") && !$0.isEmpty }
        let first = order.compactMap { addresses[$0] }.prefix(200)
        try #require(first.count == 200, "scripts/tandem.order names too few of the binary's functions: stale? (make link-order)")
        let span = first.max()! - first.min()!
        #expect(span < 1 << 20, "the first 200 launch-path functions span \(span >> 10) KiB of text")
    }
}
