import Foundation
import HostOS
@testable import MicroVM
import Testing

@Suite("Tap: the host side of --net", .enabled(if: FileManager.default.fileExists(atPath: "/dev/net/tun") && getuid() == 0,
                                               "needs /dev/net/tun and root (CAP_NET_ADMIN)"))
struct TapTests {
    static func addresses(_ name: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/sbin/ip")
        process.arguments = ["-4", "-o", "addr", "show", "dev", name]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }

    @Test("tandemN is made, addressed and up, each VM its own /24; it disappears when the tap is released")
    func ownTap() throws {
        var first: Tap? = try Tap.open(name: nil)
        var second: Tap? = try Tap.open(name: nil)
        let (one, two) = (first!.name, second!.name)
        #expect(one != two && one.hasPrefix("tandem") && two.hasPrefix("tandem"))
        for tap in [first!, second!] {
            let host = try #require(tap.hostAddress), guest = try #require(tap.guestAddress)
            let shown = try Self.addresses(tap.name)
            #expect(shown.contains("inet \(host)/24"), "\(tap.name) has \(shown)")
            #expect(tap.guestCommandLine == "tandem.net=\(guest)/24,\(host)")
            let flags = Files.readText("/sys/class/net/\(tap.name)/flags").flatMap { UInt32($0.dropFirst(2).prefix { $0 != "\n" }, radix: 16) } ?? 0
            #expect(flags & 1 == 1, "\(tap.name) is up")
        }
        #expect(first!.hostAddress != second!.hostAddress)
        first = nil
        second = nil
        #expect(!FileManager.default.fileExists(atPath: "/sys/class/net/\(one)") && !FileManager.default.fileExists(atPath: "/sys/class/net/\(two)"),
                "a tap Tandem made outlived its descriptor")
    }

    @Test("a named tap is attached as it is, addressed by nobody; a bad name is refused, named")
    func namedTap() throws {
        var tap: Tap? = try Tap.open(name: "tandemtest\(getpid() % 1000)")
        #expect(tap!.guestCommandLine == nil && tap!.hostAddress == nil)
        #expect(try Self.addresses(tap!.name).isEmpty)
        tap = nil
        #expect(throws: SystemError.self) { try Tap.open(name: "bad/name") }
        #expect(throws: SystemError.self) { try Tap.open(name: "a-name-far-too-long-for-linux") }
    }
}
