import Foundation
import Glibc
import HostOS
import Testing

@Suite("HostOS")
struct HostOSTests {
    @Test("JSON escapes strings (control characters, quotes, backslashes; multi-byte text whole) and keeps key order")
    func jsonSerialisation() throws {
        let value = JSON.object([
            ("b", .int(-3)), ("a", .string("quote\" backslash\\ newline\n tab\t bell\u{7}")),
            ("list", .array([.bool(true), .null, .double(1.5), .uint(UInt64.max)])), ("empty", .object([])),
        ])
        #expect(value.serialized() == #"{"b":-3,"a":"quote\" backslash\\ newline\n tab\t bell\u0007","list":[true,null,1.5,18446744073709551615],"empty":{}}"#)
        #expect(JSON.double(.nan).serialized() == "null")
        // Multi-byte text passes whole, escapes land between it, and it reads back the same.
        let text = "é\u{1}ü—\"🙂\\\u{1f}x\u{7f}"
        #expect(JSON.string(text).serialized() == #""é\u0001ü—\"🙂\\\u001fx\#u{7f}""#)
        #expect(try JSON.parse(JSON.string(text).serialized()) == .string(text))
        #expect(JSON.string("").serialized() == #""""#)
        #expect(JSON.array([.int(1)]).serialized(indent: 2) == "[\n  1\n]")
    }

    @Test("SystemError names the call, its argument and errno")
    func systemErrorText() {
        let error = SystemError("open", "/dev/kvm", errno: EACCES)
        #expect(error.description == "open(/dev/kvm): Permission denied (EACCES)")
        #expect(SystemError("eventfd", errno: EMFILE).description.hasPrefix("eventfd: "))
    }

    @Test("Files reports kinds and reads what it is given")
    func files() throws {
        #expect(Files.kind("/") == .directory)
        #expect(Files.kind("/proc/self/status") == .regular)
        #expect(Files.kind("/definitely/not/here") == .missing)
        #expect(Files.which("sh") != nil)
        #expect(Files.which("no-such-program-tandem") == nil)
        #expect(Files.directory(of: "/a/b/c") == "/a/b")
        #expect(Files.directory(of: "/a") == "/")
        #expect(throws: SystemError.self) { try Files.read("/definitely/not/here") }
        let path = "/tmp/tandem-hostos-test-\(getpid())"
        defer { unlink(path) }
        try Files.write(path, Array("hello".utf8))
        #expect(Files.readText(path) == "hello")
        #expect(Files.size(path) == 5)
    }

    @Test("Subprocess captures output and status without Foundation")
    func subprocess() throws {
        let result = try Subprocess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 7"])
        #expect(result.status == 7)
        #expect(result.output.contains("out") && result.output.contains("err"))
        #expect(throws: SystemError.self) { try Subprocess.run("/no/such/binary", []) }
    }

    @Test("HostThread runs its closure and joins")
    func thread() throws {
        let box = Box()
        let thread = try HostThread(name: "test") { box.value = 42 }
        thread.join()
        #expect(box.value == 42)
    }

    final class Box: @unchecked Sendable { var value = 0 }
}

@Suite("LineBuffer")
struct LineBufferTests {
    @Test("serial \\r\\n and \\r\\r\\n endings, lines split across chunks, the unfinished last line")
    func lines() {
        var buffer = LineBuffer()
        #expect(buffer.append(Array("TANDEM-RE".utf8)) == [])
        #expect(buffer.append(Array("ADY\r\nhello\r\r\nx".utf8)) == ["TANDEM-READY", "hello"])
        #expect(buffer.remainder == "x")
        #expect(buffer.flush() == ["x"])
        #expect(buffer.flush() == [])
    }

    @Test("fromFirst finds text after an unfinished line")
    func fromFirst() {
        #expect("ok]\r{\"schema\":1}".fromFirst("{\"schema\"") == "{\"schema\":1}")
        #expect("nothing".fromFirst("{") == nil)
    }
}

@Suite("JSON reader: hostile input")
struct JSONReaderTests {
    @Test("a lone surrogate becomes U+FFFD and what follows it is read on its own (it used to overflow and crash)")
    func loneSurrogates() throws {
        #expect(try JSON.parse(#""\ud800\u0041""#) == .string("\u{FFFD}A"))
        #expect(try JSON.parse(#""\udc00""#) == .string("\u{FFFD}"))
        #expect(try JSON.parse(#""\ud800""#) == .string("\u{FFFD}"))
        #expect(try JSON.parse(#""\ud800\ud800\udc00""#) == .string("\u{FFFD}\u{10000}"))
        #expect(try JSON.parse(#""\ud83d\ude00""#) == .string("😀"))
        #expect(throws: JSONParseError.self) { try JSON.parse(#""\ud800\uZZZZ""#) }
    }

    @Test("numbers with a leading zero are refused (RFC 8259), a lone zero and fractions of it are not")
    func leadingZeros() throws {
        for text in ["01", "-01", "00", "[1, 007]", #"{"uid": 01}"#] {
            #expect(throws: JSONParseError.self, "\(text)") { try JSON.parse(text) }
        }
        #expect(try JSON.parse("0") == .int(0))
        #expect(try JSON.parse("-0") == .int(0))
        #expect(try JSON.parse("0.5") == .double(0.5))
        #expect(try JSON.parse("0e3") == .double(0))
    }

    @Test("a repeated key keeps its last value, placed last; 100,000 keys with repeats read in one pass")
    func repeatedKeys() throws {
        let value = try JSON.parse(#"{"a": 1, "b": 2, "a": 3, "c": 4, "b": 5}"#)
        #expect(value.serialized() == #"{"a":3,"c":4,"b":5}"#, "a and b keep their last values, each in its last place")
        // Each key twice: the old reader removed the earlier member with a scan per key
        // (quadratic: a 10 MiB config took 11 s). The result must be the same members.
        let keys = (0..<100_000).map { "\"k\($0)\": \($0)" }
        let text = "{" + (keys + keys.map { $0.replacingOccurrences(of: ": ", with: ": -") }).joined(separator: ",") + "}"
        guard case .object(let members) = try JSON.parse(text) else { Issue.record("not an object"); return }
        #expect(members.count == 100_000)
        #expect(members.first?.0 == "k0" && members.last?.0 == "k99999")
        #expect(try JSON.parse(text)["k5"] == .int(-5))
    }
}

/// JSONTestSuite (MIT, Tests/HostOSTests/JSONTestSuite): every y_ file read, every n_ file refused,
/// every i_ file one or the other without a crash. The reader before this session crashed on it.
@Suite("JSON reader against JSONTestSuite")
struct JSONTestSuiteTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("JSONTestSuite/test_parsing").path
    static let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()

    static func parses(_ name: String) -> Bool {
        let data = (try? Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))) ?? Data()
        return (try? JSON.parse(String(decoding: data, as: UTF8.self))) != nil
    }

    @Test("every y_ file is accepted, every n_ file refused, every i_ file decided without a crash")
    func suite() {
        #expect(Self.files.count > 300, "the suite is in the tree")
        var wrong: [String] = []
        for name in Self.files {
            let accepted = Self.parses(name)
            if name.hasPrefix("y_") && !accepted { wrong.append("refused " + name) }
            if name.hasPrefix("n_") && accepted { wrong.append("accepted " + name) }
        }
        #expect(wrong.isEmpty, "\(wrong.joined(separator: ", "))")
    }
}

@Suite("Subprocess.stream: a child that goes silent")
struct StreamSilenceTests {
    @Test("silent past silenceSeconds: stopped (SIGTERM) and said so; one that keeps talking runs to its end")
    func silence() throws {
        let started = Clock.monotonicNanoseconds()
        var said = ""
        let stuck = try Subprocess.stream("/bin/sh", ["-c", "echo up; exec sleep 30"], silenceSeconds: 0.5) { said += String(decoding: $0, as: UTF8.self) }
        #expect(stuck.silent && stuck.status == 128 + SIGTERM, "\(stuck)")
        #expect(said == "up\n")
        #expect(Clock.monotonicNanoseconds() - started < 5_000_000_000, "stopped after the silence, not at its end")
        let talking = try Subprocess.stream("/bin/sh", ["-c", "for i in 1 2 3 4; do echo $i; sleep 0.3; done"], silenceSeconds: 1) { _ in }
        #expect(!talking.silent && talking.status == 0, "\(talking)")
    }
}
