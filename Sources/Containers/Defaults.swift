import HostOS

/// Every default a container gets, defined once for both front ends: `tandem-runtime spec` writes
/// them into a config.json, `tandem ctr run` builds its config from them (with Docker's
/// capability set). The engine itself adds nothing a config does not say, except what the
/// runtime spec makes the runtime's job: /dev's default nodes and links (`Launch`) and the
/// always-allowed devices of the device cgroup (`DeviceAccess`).
package enum Defaults {
    package static let ociVersion = "1.0.2"
    package static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// `runc spec`'s capability set.
    package static let specCapabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    /// Docker's default set (moby's oci/caps/defaults.go), which `tandem ctr` containers get:
    /// root in the container keeps CAP_MKNOD, and the device cgroup keeps it from the host's devices.
    package static let dockerCapabilities = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
    ]
    /// OCI default masked paths (runc's, plus powercap as newer runc and Docker mask it): hidden
    /// behind /dev/null or an empty read-only tmpfs.
    package static let maskedPaths = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                                      "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                                      "/sys/firmware", "/sys/devices/virtual/powercap"]
    /// OCI default read-only paths.
    package static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    /// The links every container's /dev has (runtime-spec config-linux.md "Default Devices" and
    /// runc): (target, link). /dev/ptmx is a link to the container's own devpts instance, never a
    /// bind of a path under the root (a hostile root could point it anywhere).
    package static let deviceSymlinks = [("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"), ("/proc/self/fd/1", "/dev/stdout"),
                                         ("/proc/self/fd/2", "/dev/stderr"), ("pts/ptmx", "/dev/ptmx")]
    /// The namespaces a container gets.
    package static let namespaces = ["pid", "network", "ipc", "uts", "mount", "cgroup"]

    /// One mount of config.json.
    package static func mount(_ destination: String, _ type: String, _ source: String, _ options: [String]) -> JSON {
        var members: [(String, JSON)] = [("destination", .string(destination)), ("type", .string(type)), ("source", .string(source))]
        if !options.isEmpty { members.append(("options", .array(options.map(JSON.string)))) }
        return .object(members)
    }

    /// The OCI default mounts (`runc spec`).
    package static let mounts: [JSON] = [
        mount("/proc", "proc", "proc", []),
        mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
        mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", ["nosuid", "noexec", "nodev", "relatime", "ro"]),
    ]

    /// The namespaces of a rootless container (`spec --rootless`, as runc's): a user namespace;
    /// no network namespace (the host's network, as rootless runc) and no cgroup namespace.
    package static let rootlessNamespaces = ["pid", "ipc", "uts", "mount", "user"]

    /// The mounts of a rootless container: /sys bound from the host (a user may mount sysfs only
    /// in a network namespace of its own), devpts without gid=5 (unmapped there).
    package static let rootlessMounts: [JSON] = mounts.map { mount in
        guard case .object(let members) = mount, case .string(let destination)? = members.first(where: { $0.0 == "destination" })?.1 else { return mount }
        switch destination {
        case "/sys": return Defaults.mount("/sys", "none", "/sys", ["rbind", "nosuid", "noexec", "nodev", "ro"])
        case "/dev/pts": return Defaults.mount("/dev/pts", "devpts", "devpts", ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"])
        default: return mount
        }
    }

    /// `spec --rootless`: the defaults for a user other than root, whose own uid and gid become
    /// root in the container's user namespace; no cgroup settings (a user has no cgroup of its
    /// own unless one is delegated). (`rootless: true` in `config`: its mounts, no device rules.)
    package static func rootlessConfig(uid: UInt32, gid: UInt32) -> JSON {
        func mapping(_ id: UInt32) -> JSON { .array([.object([("containerID", .int(0)), ("hostID", .int(Int64(id))), ("size", .int(1))])]) }
        return config(namespaces: rootlessNamespaces, linuxExtras: [("uidMappings", mapping(uid)), ("gidMappings", mapping(gid))],
                      rootless: true)
    }

    /// A config.json with every default: `runc spec`'s (a shell on a terminal in `rootfs`) unless
    /// the caller says otherwise.
    package static func config(args: [String] = ["sh"], env: [String] = ["PATH=\(path)", "TERM=xterm"], terminal: Bool = true,
                               capabilities: [String] = specCapabilities, rlimits: [JSON]? = nil, rootPath: String = "rootfs",
                               readonly: Bool = true, hostname: String = "tandem", extraMounts: [JSON] = [],
                               resources: [(String, JSON)] = [], namespaces: [String] = namespaces, linuxExtras: [(String, JSON)] = [], annotations: [(String, String)] = [],
                               rootless: Bool = false, cwd: String = "/", user: (uid: UInt32, gid: UInt32, additionalGids: [UInt32]) = (0, 0, [])) -> JSON {
        let caps = JSON.array(capabilities.map(JSON.string))
        let limits = rlimits ?? [.object([("type", .string("RLIMIT_NOFILE")), ("hard", .int(1024)), ("soft", .int(1024))])]
        var top: [(String, JSON)] = [
            ("ociVersion", .string(ociVersion)),
            ("process", .object([
                ("terminal", .bool(terminal)), ("user", .object([("uid", .int(Int64(user.uid))), ("gid", .int(Int64(user.gid)))]
                                  + (user.additionalGids.isEmpty ? [] : [("additionalGids", .array(user.additionalGids.map { .int(Int64($0)) }))]))),
                ("args", .array(args.map(JSON.string))), ("env", .array(env.map(JSON.string))), ("cwd", .string(cwd)),
                ("capabilities", .object([("bounding", caps), ("effective", caps), ("permitted", caps), ("ambient", caps)])),
                ("rlimits", .array(limits)),
                ("noNewPrivileges", .bool(true)),
            ])),
            ("root", .object([("path", .string(rootPath)), ("readonly", .bool(readonly))])),
            ("hostname", .string(hostname)),
            ("mounts", .array((rootless ? rootlessMounts : mounts) + extraMounts)),
            // Rootless: no device rules (a user namespace cannot mknod; without a delegated
            // cgroup there is nowhere to write them), and no resources unless asked for.
            ("linux", .object((rootless ? (resources.isEmpty ? [] : [("resources", .object(resources))]) : [
                ("resources", .object([("devices", .array([.object([("allow", .bool(false)), ("access", .string("rwm"))])]))] + resources)),
            ]) + [
                ("namespaces", .array(namespaces.map { .object([("type", .string($0))]) })),
                ("maskedPaths", .array(maskedPaths.map(JSON.string))),
                ("readonlyPaths", .array(readonlyPaths.map(JSON.string))),
            ] + linuxExtras)),
        ]
        if !annotations.isEmpty { top.append(("annotations", .object(annotations.map { ($0.0, .string($0.1)) }))) }
        return .object(top)
    }
}
