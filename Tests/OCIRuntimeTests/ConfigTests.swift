import Foundation
import HostOS
@testable import OCIRuntime
@testable import Containers
import Testing

@Suite("config.json: read strictly, errors name the field")
struct ConfigTests {
    static let minimal = """
    {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
     "linux": {"namespaces": [{"type": "mount"}]}}
    """

    func parse(_ text: String) throws(OCIError) -> OCIConfig { try OCIConfig.parse(text, bundle: "/bundle") }

    func error(_ text: String) -> String {
        do { _ = try parse(text); return "" } catch { return error.description }
    }

    @Test("a minimal config: relative root made absolute against the bundle, defaults")
    func minimal() throws {
        let config = try parse(Self.minimal)
        #expect(config.rootPath == "/bundle/rootfs")
        #expect(config.process?.args == ["sh"])
        #expect(config.process?.noNewPrivileges == false)
        #expect(config.newNamespace("mount"))
    }

    @Test("wrong types, missing fields and bad values name the field", arguments: [
        (#""uid": 0"#, #""uid": "root""#, "process.user.uid: expected an integer"),
        (#""cwd": "/""#, #""cwd": "tmp""#, "process.cwd: must be an absolute path"),
        (#""args": ["sh"]"#, #""args": []"#, "process.args: must name a program"),
        (#"{"type": "mount"}"#, #"{"type": "mount"}, {"type": "bogus"}"#, "linux.namespaces[1].type: unknown namespace type \"bogus\""),
        (#"{"type": "mount"}"#, #"{"type": "mount"}, {"type": "mount"}"#, "listed twice"),
        (#""ociVersion": "1.0.2""#, #""ociVersion": "2.0.0""#, "ociVersion: \"2.0.0\" is not a 1.x version"),
        (#""root": {"path": "rootfs"}, "#, "", "root: missing (required)"),
    ])
    func fieldErrors(_ original: String, _ replacement: String, _ message: String) {
        let text = Self.minimal.replacingFirst(original, with: replacement)
        #expect(error(text).contains(message), "\(error(text))")
    }

    @Test("unknown fields are ignored, as the spec requires, and listed")
    func unknownFields() throws {
        let config = try parse(Self.minimal.replacingFirst(#""ociVersion": "1.0.2""#, with: #""ociVersion": "1.0.2", "x-vendor": 1"#))
        #expect(config.unknownFields == ["x-vendor"])
    }

    @Test("fields known but not supported are errors, not silently ignored")
    func unsupported() {
        let text = Self.minimal.replacingFirst(#""namespaces""#, with: #""intelRdt": {"closID": "x"}, "namespaces""#)
        #expect(error(text).contains("linux.intelRdt: not supported"))
        let time = Self.minimal.replacingFirst(#"{"type": "mount"}"#, with: #"{"type": "mount"}, {"type": "time"}"#)
        #expect(error(time).contains("time namespaces are not supported"))
    }

    @Test("mappings need a user namespace and may not overlap; sysctls must be namespaced")
    func mappingsAndSysctls() {
        let mappings = Self.minimal.replacingFirst(#""namespaces""#, with: #""uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}], "namespaces""#)
        #expect(error(mappings).contains("linux.uidMappings: mappings need a new user namespace"))
        let overlap = Self.minimal.replacingFirst(#"{"type": "mount"}"#, with: #"{"type": "mount"}, {"type": "user"}"#)
            .replacingFirst(#""namespaces""#, with: #""uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}, {"containerID": 5, "hostID": 5000, "size": 10}], "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}], "namespaces""#)
        #expect(error(overlap).contains("overlap"))
        let sysctl = Self.minimal.replacingFirst(#""namespaces""#, with: #""sysctl": {"net.ipv4.ip_forward": "1"}, "namespaces""#)
        #expect(error(sysctl).contains("linux.sysctl.net.ipv4.ip_forward: needs its own network namespace"))
    }

    @Test("seccomp: actions, operators and flags are checked; the profile compiles with libseccomp")
    func seccomp() throws {
        let bad = Self.minimal.replacingFirst(#""namespaces""#, with: #""seccomp": {"defaultAction": "SCMP_ACT_NOPE"}, "namespaces""#)
        #expect(error(bad).contains("linux.seccomp.defaultAction: unknown action"))
        let good = Self.minimal.replacingFirst(#""namespaces""#, with: """
        "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
          {"names": ["read", "write", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]},
        "namespaces"
        """)
        let config = try parse(good)
        let compiled = try CompiledSeccomp.compile(try #require(config.seccomp))
        #expect(compiled.instructions > 4)
        #expect(compiled.program.count == compiled.instructions * 8)
        #expect(compiled.unknownSyscalls == 1)
    }
}

@Suite("tandem-runtime's small parsers")
struct ParserTests {
    @Test("JSON: values, escapes, surrogate pairs, and errors with a position")
    func json() throws {
        let value = try JSON.parse(#"{"a": [1, -2, 3.5, 18446744073709551615], "s": "x\n\u00e9\ud83d\ude00", "t": true, "n": null}"#)
        #expect(value["a"] == .array([.int(1), .int(-2), .double(3.5), .uint(.max)]))
        #expect(value["s"] == .string("x\né😀"))
        #expect(value["t"] == .bool(true))
        do { _ = try JSON.parse("{\n  \"a\": ,\n}"); Issue.record("accepted invalid JSON") } catch {
            #expect(error.description.contains("line 2"))
        }
        #expect(throws: JSONParseError.self) { try JSON.parse("[1, 2") }
        #expect(throws: JSONParseError.self) { try JSON.parse("{} x") }
    }

    @Test("mount options: flags, propagation, file system data")
    func mountOptions() {
        let parsed = MountOptions.parse(["rbind", "ro", "nosuid", "rslave", "mode=755", "size=1m"])
        #expect(parsed.bind)
        #expect(parsed.flags & UInt(MS_RDONLY) != 0 && parsed.flags & UInt(MS_REC) != 0)
        #expect(parsed.propagation == UInt(MS_SLAVE | MS_REC))
        #expect(parsed.data == ["mode=755", "size=1m"])
        #expect(MountOptions.parse(["ro", "rw"]).flags & UInt(MS_RDONLY) == 0)
    }

    @Test("signals by name, SIG-name, number; bad ones refused")
    func signals() throws {
        #expect(try KillCommand.signal("KILL") == 9)
        #expect(try KillCommand.signal("SIGTERM") == 15)
        #expect(try KillCommand.signal("sigusr1") == 10)
        #expect(try KillCommand.signal("9") == 9)
        #expect(try KillCommand.signal("RTMIN+2") == 36)
        #expect(throws: OCIError.self) { try KillCommand.signal("NOPE") }
        #expect(throws: OCIError.self) { try KillCommand.signal("0") }
    }

    @Test("cgroupsPath: absolute, relative (under tandem-runtime/), default, systemd refused")
    func cgroupsPath() throws {
        #expect(try CgroupPlacement.resolve(nil, id: "c1") == ("tandem-runtime", "c1"))
        #expect(try CgroupPlacement.resolve("/machine/pod/c1", id: "x") == ("machine/pod", "c1"))
        #expect(try CgroupPlacement.resolve("pod/c1", id: "x") == ("tandem-runtime/pod", "c1"))
        #expect(throws: OCIError.self) { try CgroupPlacement.resolve("system.slice:libpod:c1", id: "x") }
        #expect(throws: OCIError.self) { try CgroupPlacement.resolve("/a/../b", id: "x") }
    }

    @Test("container ids as runc accepts them")
    func ids() {
        #expect((try? RecordStore.validate(id: "abc-1.2_x+y")) != nil)
        for bad in ["", ".hidden", "a/b", "a b", "../x"] { #expect((try? RecordStore.validate(id: bad)) == nil, "\(bad)") }
    }

    @Test("arguments: --flag value, --flag=value, short flags, switches, flags end at the first positional")
    func arguments() throws {
        let flags = [Arguments.Flag("bundle", "b", value: true), Arguments.Flag("detach", "d"), Arguments.Flag("env", "e", value: true, repeats: true)]
        let parsed = try Arguments(["-b", "/x", "--env=A=1", "-e", "B=2", "-d", "id", "--not-a-flag"], flags: flags, command: "t")
        #expect(parsed.value("bundle") == "/x")
        #expect(parsed.all("env") == ["A=1", "B=2"])
        #expect(parsed.flag("detach"))
        #expect(parsed.positionals == ["id", "--not-a-flag"])
        #expect(throws: OCIError.self) { try Arguments(["--nope"], flags: flags, command: "t") }
        #expect(throws: OCIError.self) { try Arguments(["--bundle"], flags: flags, command: "t") }
    }
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let range = range(of: target) else { return self }
        return replacingCharacters(in: range, with: replacement)
    }
}
