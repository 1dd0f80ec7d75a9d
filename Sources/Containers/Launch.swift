import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A config.json turned into what the C child needs (`struct clinux_container`), built in an arena
/// that lives until the child is spawned. Decisions that need the host (the cgroup directories a
/// `cgroup` mount binds, the program's path inside the root) are made here, in Swift.
package struct Launch {
    package let config: OCIConfig
    package let process: OCIConfig.Process
    /// The program's path inside the root (process.args[0] looked up on the container's PATH).
    package let program: String

    package static let namespaceFlags: [String: Int32] = [
        "pid": CLONE_NEWPID, "network": CLONE_NEWNET, "mount": CLONE_NEWNS, "ipc": CLONE_NEWIPC,
        "uts": CLONE_NEWUTS, "user": CLONE_NEWUSER, "cgroup": CLONE_NEWCGROUP,
    ]
    /// The nodes every container's /dev has (runtime-spec config-linux.md "Default Devices").
    package static let defaultDevices: [(name: String, major: UInt32, minor: UInt32)] = [
        ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0),
    ]

    /// Checks what needs the host before anything is made; `process` may come from `exec --process`.
    /// The program is looked up in `files` (the overlay's lower layer, before it is mounted) or
    /// else in the root — unless the front end has looked it up already (`program`).
    package init(config: OCIConfig, process: OCIConfig.Process? = nil, files: String? = nil, program known: String? = nil) throws(OCIError) {
        self.config = config
        guard let process = process ?? config.process else { throw OCIError("config.json: process: missing (a container needs a process to start)") }
        self.process = process
        guard Files.kind(config.rootPath) == .directory else {
            throw OCIError("config.json: root.path: \(config.rootPath) \(Files.kind(config.rootPath) == .missing ? "does not exist" : "is not a directory")")
        }
        if !config.has("mount") { try Launch.checkWithoutMountNamespace(config) }
        let path = process.env.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? Defaults.path
        let name = process.args[0]
        if let resolved = known ?? Launch.resolve(name, in: files ?? config.rootPath, path: path) {
            program = resolved
        } else if name.hasPrefix("/"), config.mounts.contains(where: { name.hasPrefix($0.destination + "/") }) {
            program = name  // provided by a mount, seen only once it is made
        } else {
            throw OCIError("config.json: process.args[0]: \"\(name)\" is not an executable file in \(config.rootPath)\(name.contains("/") ? "" : " on PATH \(path)")")
        }
    }

    /// A config that lists no mount namespace shares the runtime's (the spec: an unlisted namespace
    /// is inherited). The container is then only chroot'ed into its root, and nothing that needs
    /// a mount is possible: it would be made in the host's namespace and outlive the container
    /// (runc 1.1.5 does make them there, and leaves them).
    static func checkWithoutMountNamespace(_ config: OCIConfig) throws(OCIError) {
        let why = "the container shares the host's mount namespace (linux.namespaces lists none), where it would be mounted and stay"
        let needs: [(String, Bool)] = [
            ("mounts", !config.mounts.isEmpty), ("linux.maskedPaths", !config.maskedPaths.isEmpty),
            ("linux.readonlyPaths", !config.readonlyPaths.isEmpty), ("root.readonly", config.rootReadonly),
            ("linux.rootfsPropagation", config.rootfsPropagation != 0), ("linux.devices", !config.devices.isEmpty),
            ("linux.mountLabel", config.mountLabel != nil),
        ]
        if let (field, _) = needs.first(where: { $0.1 }) {
            throw OCIError("config.json: \(field): needs a mount namespace: \(why); list a mount namespace or leave \(field) out")
        }
    }

    /// `program` inside `root`: as given when it has a slash, else the first match on `path`.
    /// Every path is resolved inside the root (CLinux's clinux_stat_in_root: symlinks and ".."
    /// never leave it), so the host's own files are never what is found.
    package static func resolve(_ program: String, in root: String, path: String) -> String? {
        let candidates = program.contains("/") ? [program.hasPrefix("/") ? program : "/" + program]
            : path.split(separator: ":").map { "\($0)/\(program)" }
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { return nil }
        defer { close(rootFD) }
        for candidate in candidates where isExecutable(candidate, inRoot: rootFD) { return candidate }
        return nil
    }

    static func isExecutable(_ path: String, inRoot rootFD: Int32) -> Bool {
        var info = stat()
        guard clinux_stat_in_root(rootFD, path, &info) == 0 else { return false }
        return info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o111 != 0
    }

    package var cloneFlags: Int32 {
        config.namespaces.filter { $0.path == nil }.reduce(0) { $0 | (Launch.namespaceFlags[$1.type] ?? 0) }
    }

    /// Cgroup mounts become binds of the container's own cgroup directories: with or without a
    /// cgroup namespace, the container sees its cgroup as the root of /sys/fs/cgroup (as with runc).
    /// `directory(controller)` is the container's cgroup directory for a controller (v2: the
    /// one); the index of the first mount that binds one comes back too (those wait until the
    /// cgroups exist).
    package func mounts(layout: CgroupLayout, console: String?, directory: (String) -> String?) -> (mounts: [clinuxMountSpec], firstCgroup: Int?) {
        var list: [clinuxMountSpec] = []
        var firstCgroup: Int?
        for mount in config.mounts {
            let options = MountOptions.parse(mount.options)
            let isBind = mount.type == "bind" || options.bind
            if mount.type == "cgroup" || mount.type == "cgroup2" {
                firstCgroup = firstCgroup ?? list.count
                let flags = options.flags & ~UInt(MS_BIND | MS_REC)
                switch layout {
                case .v2:
                    if let directory = directory("memory") {
                        list.append(clinuxMountSpec(source: directory, target: mount.destination, fstype: nil, flags: UInt(MS_BIND | MS_REC) | flags,
                                                    data: nil, make: 1, remount: flags != 0, propagation: options.propagation))
                    }
                case .v1(let controllers):
                    list.append(clinuxMountSpec(source: "tmpfs", target: mount.destination, fstype: "tmpfs",
                                                flags: UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), data: "mode=755", make: 1, remount: false, propagation: 0))
                    for name in controllers.keys.sorted() {
                        guard let directory = directory(name) else { continue }
                        list.append(clinuxMountSpec(source: directory, target: "\(mount.destination)/\(name)", fstype: nil,
                                                    flags: UInt(MS_BIND) | flags, data: nil, make: 1, remount: flags != 0, propagation: 0))
                    }
                    // The tmpfs itself goes read-only last, as runc does.
                    if flags & UInt(MS_RDONLY) != 0 {
                        list.append(clinuxMountSpec(source: "tmpfs", target: mount.destination, fstype: nil,
                                                    flags: UInt(MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC), data: nil, make: 0,
                                                    remount: false, propagation: 0))
                    }
                }
                continue
            }
            if isBind {
                var source = mount.source ?? ""
                if !source.hasPrefix("/") { source = config.bundle + "/" + source }
                let make: Int32 = Files.kind(source) == .directory ? 1 : 2
                let extra = options.flags & ~UInt(MS_BIND | MS_REC)
                list.append(clinuxMountSpec(source: source, target: mount.destination, fstype: nil, flags: options.flags | UInt(MS_BIND),
                                            data: nil, make: make, remount: extra != 0, propagation: options.propagation))
            } else {
                let type = mount.type ?? "none"
                var data = options.data
                if let label = config.mountLabel, ["tmpfs", "devpts", "mqueue"].contains(type) { data.append("context=\"\(label)\"") }
                list.append(clinuxMountSpec(source: mount.source ?? type, target: mount.destination, fstype: type, flags: options.flags,
                                            data: data.isEmpty ? nil : data.joined(separator: ","), make: 1, remount: false,
                                            propagation: options.propagation))
            }
        }
        if let console {
            list.append(clinuxMountSpec(source: console, target: "/dev/console", fstype: nil, flags: UInt(MS_BIND), data: nil, make: 2,
                                        remount: false, propagation: 0))
        }
        return (list, firstCgroup)
    }

    /// Whether the runtime supplies /dev's default nodes: unless /dev is the host's (a bind).
    package var suppliesDefaultDevices: Bool {
        config.has("mount") && !config.mounts.contains { $0.destination == "/dev" && ($0.type == "bind" || MountOptions.parse($0.options).bind) }
    }

    /// The nodes to make in /dev: the default ones (unless /dev is the host's or the config
    /// makes its own at that path), then the config's. `path` is set by whoever copies it to C.
    package var deviceNodes: [(path: String, node: clinux_device)] {
        var list: [(String, clinux_device)] = []
        if suppliesDefaultDevices {
            for device in Launch.defaultDevices where !config.devices.contains(where: { $0.path == "/dev/" + device.name }) {
                list.append(("/dev/" + device.name, clinux_device(path: nil, mode: S_IFCHR | 0o666, major: device.major, minor: device.minor, uid: 0, gid: 0)))
            }
        }
        for device in config.devices {
            let type: mode_t = switch device.type {
            case "b": S_IFBLK
            case "p": S_IFIFO
            default: S_IFCHR
            }
            list.append((device.path, clinux_device(path: nil, mode: type | mode_t(device.fileMode ?? 0o666), major: UInt32(device.major),
                                                    minor: UInt32(device.minor), uid: device.uid ?? 0, gid: device.gid ?? 0)))
        }
        return list
    }

    /// The C process description: ids, capability sets, limits, seccomp, terminal.
    package func cProcess(_ arena: CStrings, seccomp: CompiledSeccomp?, consoleFD: Int32, program: String? = nil) -> clinux_process {
        var p = clinux_process()
        p.path = arena.string(program ?? self.program)
        p.argv = UnsafePointer(arena.array(process.args))
        p.envp = UnsafePointer(arena.array(process.env))
        p.cwd = arena.string(process.cwd)
        p.set_ids = 1
        p.uid = process.user.uid
        p.gid = process.user.gid
        p.groups = UnsafePointer(arena.copy(process.user.additionalGids))
        p.group_count = Int32(process.user.additionalGids.count)
        p.umask = Int32(process.user.umask ?? -1)
        let caps = process.capabilities
        p.cap_bounding = caps.bounding
        p.cap_effective = caps.effective
        p.cap_permitted = caps.permitted
        p.cap_inheritable = caps.inheritable
        p.cap_ambient = caps.ambient
        let limits = process.rlimits.map { clinux_rlimit(resource: $0.resource, soft: $0.soft, hard: $0.hard) }
        p.rlimits = UnsafePointer(arena.copy(limits))
        p.rlimit_count = Int32(limits.count)
        p.no_new_privileges = process.noNewPrivileges ? 1 : 0
        if let seccomp {
            p.seccomp_filter = UnsafeRawPointer(arena.copy(seccomp.program))
            p.seccomp_length = UInt16(seccomp.instructions)
            p.seccomp_flags = seccomp.flags
        }
        p.personality = config.personality.map { Int($0) } ?? -1
        p.apparmor_profile = process.appArmorProfile.map(arena.string)
        p.selinux_label = process.seLinuxLabel.map(arena.string)
        p.console_fd = consoleFD
        return p
    }
}

/// One mount for `clinux_mount`, before its strings are copied into C memory.
package struct clinuxMountSpec {
    package var source: String
    package var target: String
    package var fstype: String?
    package var flags: UInt
    package var data: String?
    package var make: Int32
    package var remount: Bool
    package var propagation: UInt
}
