import Foundation
import HostOS
import Testing

@Suite("ProcFields: /proc's Key: value files as bytes")
struct ProcFieldsTests {
    static let status = ProcFields(bytes: Array("""
        Name:\ttandem
        VmHWMx:\t  999 kB
        VmHWM:\t    5120 kB
        RssAnon:\t     232 kB
        flags\t\t: fpu vme svmx svm lm
        Empty:
        Huge:\t99999999999999999999999 kB

        """.utf8))

    @Test("a key's value and leading number; a longer key with the same start is another key")
    func values() {
        #expect(Self.status.number("VmHWM") == 5120)
        #expect(Self.status.number("VmHWMx") == 999)
        #expect(Self.status.number("RssAnon") == 232)
        #expect(Self.status.value("Name").map { String(decoding: $0, as: UTF8.self) } == "tandem")
        #expect(Self.status.number("VmHW") == nil)
        #expect(Self.status.number("Missing") == nil)
        #expect(Self.status.number("Name") == nil, "not a number")
        #expect(Self.status.number("Empty") == nil)
        #expect(Self.status.number("Huge") == nil, "overflows UInt64")
    }

    @Test("a word among a value's words (cpuinfo's flags: spaces and tabs before the colon)")
    func words() {
        #expect(Self.status.hasWord("flags", "svm"))
        #expect(Self.status.hasWord("flags", "fpu"))
        #expect(Self.status.hasWord("flags", "lm"))
        #expect(!Self.status.hasWord("flags", "vmx"), "svmx is not vmx")
        #expect(!Self.status.hasWord("flags", "sv"))
        #expect(!Self.status.hasWord("nothing", "svm"))
    }

    @Test("the real /proc/self/status and /proc/meminfo read as the text does")
    func realFiles() throws {
        let text = try String(contentsOfFile: "/proc/meminfo", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("MemTotal:") })
        let kib = UInt64(line.split(separator: " ")[1])
        #expect(ProcFields(path: "/proc/meminfo").number("MemTotal") == kib)
        #expect((ProcFields(path: "/proc/self/status").number("VmHWM") ?? 0) > 0)
        #expect(ProcFields(path: "/nonexistent").bytes.isEmpty)
    }
}
