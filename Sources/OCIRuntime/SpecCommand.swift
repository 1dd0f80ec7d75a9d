import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `spec [--bundle DIR]`: writes a default config.json, the same as `runc spec` (a shell in
/// `rootfs`, OCI default mounts, capabilities, masked and read-only paths, all devices denied).
enum SpecCommand {
    static func defaultConfig() -> JSON {
        let caps = JSON.array(Capabilities.defaults.map(JSON.string))
        func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]) -> JSON {
            var members: [(String, JSON)] = [("destination", .string(destination)), ("type", .string(type)), ("source", .string(source))]
            if !options.isEmpty { members.append(("options", .array(options.map(JSON.string)))) }
            return .object(members)
        }
        return .object([
            ("ociVersion", .string(RuntimeInfo.ociVersion)),
            ("process", .object([
                ("terminal", .bool(true)), ("user", .object([("uid", .int(0)), ("gid", .int(0))])), ("args", .array([.string("sh")])),
                ("env", .array([.string("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), .string("TERM=xterm")])),
                ("cwd", .string("/")),
                ("capabilities", .object([("bounding", caps), ("effective", caps), ("permitted", caps), ("ambient", caps)])),
                ("rlimits", .array([.object([("type", .string("RLIMIT_NOFILE")), ("hard", .int(1024)), ("soft", .int(1024))])])),
                ("noNewPrivileges", .bool(true)),
            ])),
            ("root", .object([("path", .string("rootfs")), ("readonly", .bool(true))])),
            ("hostname", .string("tandem")),
            ("mounts", .array([
                mount("/proc", "proc", "proc", []),
                mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
                mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
                mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
                mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
                mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
                mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
            ])),
            ("linux", .object([
                ("resources", .object([("devices", .array([.object([("allow", .bool(false)), ("access", .string("rwm"))])]))])),
                ("namespaces", .array(["pid", "network", "ipc", "uts", "mount", "cgroup"].map { .object([("type", .string($0))]) })),
                // One list for both front ends (Containers): runc's, plus powercap as newer runc and Docker mask it.
                ("maskedPaths", .array(ContainerRuntime.maskedPaths.map(JSON.string))),
                ("readonlyPaths", .array(ContainerRuntime.readOnlyPaths.map(JSON.string))),
            ])),
        ])
    }

    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("bundle", "b", value: true), Arguments.Flag("rootless")], command: "spec")
        try arguments.expectingNoMore(than: 0, "spec")
        if arguments.flag("rootless") { throw OCIError("spec --rootless: rootless containers are not supported by tandem-runtime") }
        let path = (arguments.value("bundle") ?? ".") + "/config.json"
        guard Files.kind(path) == .missing else { throw OCIError("spec: \(path) exists; remove it first") }
        do { try Files.write(path, Array((defaultConfig().serialized(indent: 2) + "\n").utf8), mode: 0o644) } catch {
            throw OCIError("spec: \(error.description)")
        }
        return 0
    }
}
