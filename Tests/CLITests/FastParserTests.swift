@testable import TandemCLI
import TandemLaunch
import Testing

/// The launcher parses `tandem vm run` itself; ArgumentParser's VMRunCommand owns help and errors.
/// Both must read every command line the launcher accepts the same way.
@Suite("vm run: the launcher's parser agrees with ArgumentParser")
struct FastParserTests {
    static let accepted: [[String]] = [
        ["--tiny", "hello"],
        ["--tiny=hello"],
        ["--tiny", "compute", "--arg", "100000", "--memory", "64"],
        ["--memory=32", "--tiny", "./guest.bin", "--mode", "real"],
        ["--tiny", "spin", "--timeout", "0.5", "--json"],
        ["--json", "--tiny", "exit", "--arg=3", "--kvm-device", "/dev/kvm"],
        ["--tiny", "hello", "--timeout=2", "--mode=long"],
        ["--tiny", "hello", "--timeout=-1"],
        [], ["--arg", "3"],
        ["--kernel", "/boot/vmlinuz", "--initrd", "i.cpio", "--workload", "compute", "--vcpus", "1", "--cmdline", "quiet"],
        ["--workload=hello", "--memory", "512"],
        ["--workload", "hello", "--allow-emulated"],
        ["--tiny", "blk", "--drive", "a.img", "--drive=b.img,ro"],
        ["--root-disk", "root.ext4", "--drive", "data.img", "--workload", "blkio"],
        ["--workload", "vsockio", "--vsock", "/run/v.sock", "--net", "tap"],
        ["--tiny", "hello", "--vsock=/tmp/v.sock"],
        ["--tiny", "ticker", "--api-sock", "/tmp/vm.sock"],
        ["--api-sock=/run/a.sock", "--tiny", "hello"],
    ]

    static let handedOver: [[String]] = [
        ["--help"], ["-h"], ["help"], ["--tiny"], ["--tiny", "hello", "--bogus"], ["--vcpus", "two"],
        ["--tiny", "hello", "--memory", "lots"], ["--tiny", "hello", "--mode", "protected"],
        ["--tiny", "a", "--tiny", "b"], ["--json=yes", "--tiny", "hello"], ["hello"],
        ["--tiny", "hello", "--arg", "-3"], ["--tiny", "hello", "--memory", "-1"], ["--allow-emulated=yes"],
        ["--root-disk", "a", "--root-disk", "b"],
        ["--vsock", "a", "--vsock", "b"],
        ["--api-sock", "a", "--api-sock", "b"],
    ]

    @Test("accepted lines parse identically", arguments: accepted)
    func agree(arguments: [String]) throws {
        let fast = try #require(FastVMRunParser.parse(arguments[...]))
        let full = try VMRunCommand.parse(arguments)
        #expect(fast == full.options)
    }

    @Test("everything else is left to ArgumentParser", arguments: handedOver)
    func handOver(arguments: [String]) {
        #expect(FastVMRunParser.parse(arguments[...]) == nil)
    }
}

/// The same agreement for `tandem vm restore DIR`.
@Suite("vm restore: the launcher's parser agrees with ArgumentParser")
struct FastRestoreParserTests {
    static let accepted: [[String]] = [
        ["/snap"], ["snap", "--json"], ["/snap", "--timeout", "2", "--api-sock", "/tmp/a.sock"], ["/s", "--kvm-device=/dev/kvm"],
        ["/snap", "--allow-emulated"],
    ]
    static let handedOver: [[String]] = [
        [], ["--help"], ["--json"], ["/snap", "--tiny", "hello"], ["/snap", "--memory", "32"], ["/snap", "--bogus"], ["/snap", "--json=1"],
    ]

    @Test("accepted lines parse identically", arguments: accepted)
    func agree(arguments: [String]) throws {
        let fast = try #require(FastVMRestoreParser.parse(arguments[...]))
        let full = try VMRestoreCommand.parse(arguments)
        #expect(fast == VMRunOptions(timeout: full.timeout, json: full.json, kvmDevice: full.kvmDevice, allowEmulated: full.allowEmulated,
                                     apiSocket: full.apiSock, restore: full.directory))
    }

    @Test("everything else is left to ArgumentParser", arguments: handedOver)
    func handOver(arguments: [String]) {
        #expect(FastVMRestoreParser.parse(arguments[...]) == nil)
    }
}

/// The same agreement for `tandem vm pause|resume|describe|snapshot`.
@Suite("vm control commands: the launcher's parser agrees with ArgumentParser")
struct FastControlParserTests {
    static let accepted: [[String]] = [
        ["pause", "/tmp/vm.sock"], ["resume", "vm.sock"], ["describe", "/run/a"],
        ["snapshot", "vm.sock", "--out", "snap"], ["snapshot", "vm.sock", "--leave-paused", "--out=/s"],
    ]
    static let handedOver: [[String]] = [
        ["pause"], ["pause", "--help"], ["pause", "a", "b"], ["snapshot", "a"], ["snapshot", "a", "--out"],
        ["snapshot", "a", "--out", "x", "--out", "y"], ["describe", "a", "--json"], ["stop", "a"],
    ]

    @Test("accepted lines parse identically", arguments: accepted)
    func agree(arguments: [String]) throws {
        let fast = try #require(VMControl.parse(arguments[0], arguments.dropFirst()))
        let full: VMControl.Request
        switch arguments[0] {
        case "pause": full = VMControl.Request(action: "pause", socket: try VMPauseCommand.parse(Array(arguments.dropFirst())).socket)
        case "resume": full = VMControl.Request(action: "resume", socket: try VMResumeCommand.parse(Array(arguments.dropFirst())).socket)
        case "describe": full = VMControl.Request(action: "describe", socket: try VMDescribeCommand.parse(Array(arguments.dropFirst())).socket)
        default:
            let command = try VMSnapshotCommand.parse(Array(arguments.dropFirst()))
            full = VMControl.Request(action: "snapshot", socket: command.socket, out: command.out, leavePaused: command.leavePaused)
        }
        #expect(fast == full)
    }

    @Test("everything else is left to ArgumentParser", arguments: handedOver)
    func handOver(arguments: [String]) {
        #expect(VMControl.parse(arguments[0], arguments.dropFirst()) == nil)
    }
}

/// The same agreement for `tandem ctr run`.
@Suite("ctr run: the launcher's parser agrees with ArgumentParser")
struct FastCtrParserTests {
    static let accepted: [[String]] = [
        ["--", "/bin/true"],
        ["--workload", "hello"],
        [],
        ["--memory", "32M", "--pids", "16", "--cpus=0.5", "--", "/bin/sh", "-c", "echo hi"],
        ["-m", "6m", "--memory-swap=-1", "--name", "web", "-d", "--", "sleep", "60"],
        ["--image", "/img", "--hostname", "box", "--net", "none", "--userns", "--read-only"],
        ["--rootfs=/root", "-v", "/a:/b", "--volume", "/c:/d:ro", "-e", "A=1", "--env=B=2", "--", "/bin/env"],
        ["--report", "/tmp/r.json", "--state-root", "/tmp/s", "--workload=compute"],
        ["--", "/bin/sh", "--help"],
        ["--name", "a", "--name", "b", "--", "x"],
        ["--net", "bridge", "-p", "8080:80", "--publish=5353:53/udp", "--publish", "9000:9000/tcp", "--", "/bin/httpd"],
        ["--net=host", "--", "/bin/true"],
    ]

    static let handedOver: [[String]] = [
        ["--help"], ["-h"], ["--bogus"], ["--memory"], ["--", ], ["-m32M"], ["--userns=yes"], ["extra"],
        ["--memory", "-1"],
    ]

    @Test("accepted lines parse identically", arguments: accepted)
    func agree(arguments: [String]) throws {
        let fast = try #require(FastCtrRunParser.parse(arguments[...]))
        let full = try CtrRunCommand.parse(arguments)
        #expect(fast == full.options)
    }

    @Test("everything else is left to ArgumentParser", arguments: handedOver)
    func handOver(arguments: [String]) {
        #expect(FastCtrRunParser.parse(arguments[...]) == nil)
    }
}
