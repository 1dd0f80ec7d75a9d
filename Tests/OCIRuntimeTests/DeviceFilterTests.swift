import CLinux
import Foundation
@testable import OCIRuntime
@testable import Containers
import Testing

/// The cgroup v2 device filter on a real cgroup2 mount: the unified hierarchy on a pure v2 host,
/// or the (controller-less, but BPF-capable) /sys/fs/cgroup/unified of a hybrid one.
enum CgroupTwo {
    static let root: String? = {
        for path in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            var info = statfs()
            if statfs(path, &info) == 0, info.f_type == 0x6367_7270 { return path }
        }
        return nil
    }()
}

@Suite("cgroup v2 device rules: an eBPF program", .enabled(if: getuid() == 0 && CgroupTwo.root != nil, "needs root and a cgroup2 mount"))
struct DeviceFilterTests {
    /// Runs `command` (sh -c) after moving itself into `cgroup`; returns its exit status.
    func run(in cgroup: String, _ command: String) throws -> Int32 { try output(in: cgroup, command).status }

    /// Runs `command` (sh -c) in `cgroup`; its exit status and what it printed (stdout and stderr).
    func output(in cgroup: String, _ command: String) throws -> (status: Int32, text: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "echo $$ > \(cgroup)/cgroup.procs && \(command)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// An open of `node` that the device program refuses fails with EPERM ("Operation not
    /// permitted"); one it allows succeeds, or fails for another reason (a tty with no terminal).
    func deviceRefused(in cgroup: String, _ redirection: String) throws -> Bool {
        let result = try output(in: cgroup, "exec 3\(redirection)")
        return result.status != 0 && result.text.contains("Operation not permitted")
    }

    @Test("deny all, then allow /dev/null read-write: null opens, zero does not, null may not be mknod'ed")
    func denyAllAllowNull() throws {
        let cgroup = CgroupTwo.root! + "/tandem-devfilter-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
        defer { rmdir(cgroup) }
        let rules = [clinux_device_rule(allow: 0, type: CChar(UInt8(ascii: "a")), major: -1, minor: -1, access: 7),
                     clinux_device_rule(allow: 1, type: CChar(UInt8(ascii: "c")), major: 1, minor: 3, access: 6)]
        var message = [CChar](repeating: 0, count: 512)
        let result = clinux_device_filter_attach(cgroup, rules, Int32(rules.count), &message, message.count)
        #expect(result == 0, "\(String(cString: message))")
        #expect(try run(in: cgroup, "cat /dev/null") == 0, "/dev/null (c 1:3 rw) is allowed")
        #expect(try run(in: cgroup, "head -c1 /dev/zero") != 0, "/dev/zero is denied")
        let node = NSTemporaryDirectory() + "tandem-devfilter-node-" + UUID().uuidString.prefix(8)
        defer { unlink(node) }
        #expect(try run(in: cgroup, "mknod \(node) c 1 3") != 0, "mknod (m) is not in rw")
        #expect(try run(in: CgroupTwo.root!, "head -c1 /dev/zero") == 0, "outside the cgroup nothing changed")
    }

    @Test("runc spec's rules (deny all) plus the always-allowed nodes: null, zero, full, tty open; kmsg does not")
    func defaultRules() throws {
        let config = try OCIConfig.parse("""
        {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/"},
         "linux": {"namespaces": [{"type": "mount"}], "resources": {"devices": [{"allow": false, "access": "rwm"}]}}}
        """, bundle: "/b")
        let rules = ResourceWriter.deviceRules(config).map(\.cRule)
        let cgroup = CgroupTwo.root! + "/tandem-devfilter-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: cgroup, withIntermediateDirectories: false)
        defer { rmdir(cgroup) }
        var message = [CChar](repeating: 0, count: 512)
        #expect(clinux_device_filter_attach(cgroup, rules, Int32(rules.count), &message, message.count) == 0, "\(String(cString: message))")
        #expect(try run(in: cgroup, "cat /dev/null && head -c1 /dev/zero >/dev/null") == 0, "null and zero open and read")
        #expect(try !deviceRefused(in: cgroup, ">/dev/full"), "full (c 1:7) opens for writing")
        #expect(try !deviceRefused(in: cgroup, "</dev/tty"), "tty (c 5:0) is allowed: no EPERM (ENXIO without a terminal is fine)")
        #expect(try deviceRefused(in: cgroup, "</dev/kmsg"), "kmsg (c 1:11) is refused by the program")
        #expect(try !deviceRefused(in: CgroupTwo.root!, "</dev/kmsg"), "outside the cgroup kmsg opens: the refusal was the program's")
    }
}
