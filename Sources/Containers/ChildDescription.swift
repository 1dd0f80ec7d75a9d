import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The C description of the container's first process (`struct clinux_container`), built from a
/// spec. Every string is copied into C memory that lives until `spawn` returns: the child gets
/// its own copy of the address space at clone time.
struct ChildDescription {
    let spec: ContainerSpec
    let program: String
    let rootMount: String
    let layers: (lower: String, upper: String, work: String)?
    let syncFD: Int32
    let execFD: Int32
    let errorFD: Int32

    /// The mounts inside the root, in order (runc's defaults, plus devices and volumes).
    func mounts() -> [(source: String, target: String, fstype: String?, flags: UInt, data: String?, make: Int32, readOnly: Bool, optional: Bool)] {
        let nosuidNodevNoexec = UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC)
        var list: [(String, String, String?, UInt, String?, Int32, Bool, Bool)] = [
            ("proc", "/proc", "proc", nosuidNodevNoexec, nil, 1, false, false),
            ("tmpfs", "/dev", "tmpfs", UInt(MS_NOSUID | MS_STRICTATIME), "mode=755,size=65536k", 1, false, false),
            ("devpts", "/dev/pts", "devpts", UInt(MS_NOSUID | MS_NOEXEC), "newinstance,ptmxmode=0666,mode=0620", 1, false, false),
            ("shm", "/dev/shm", "tmpfs", nosuidNodevNoexec, "mode=1777,size=65536k", 1, false, false),
            ("mqueue", "/dev/mqueue", "mqueue", nosuidNodevNoexec, nil, 1, false, true),
            ("sysfs", "/sys", "sysfs", nosuidNodevNoexec | UInt(MS_RDONLY), nil, 1, false, false),
        ]
        for device in ContainerRuntime.devices {
            list.append(("/dev/\(device)", "/dev/\(device)", nil, UInt(MS_BIND), nil, 2, false, false))
        }
        for volume in spec.volumes {
            let make: Int32 = Files.kind(volume.host) == .directory ? 1 : 2
            list.append((volume.host, volume.container, nil, UInt(MS_BIND | MS_REC), nil, make, volume.readOnly, false))
        }
        return list
    }

    func spawn() -> pid_t {
        let strings = CStrings()
        let c = strings.string
        let argv = strings.array(spec.command)
        let envp = strings.array(spec.environment)
        let masked = strings.array(ContainerRuntime.maskedPaths)
        let readOnly = strings.array(ContainerRuntime.readOnlyPaths)
        let links = strings.constArray(ContainerRuntime.deviceSymlinks.flatMap { [$0.0, $0.1] })

        let list = mounts()
        let cMounts = strings.buffer(of: clinux_mount.self, count: list.count)
        for (index, mount) in list.enumerated() {
            cMounts[index] = clinux_mount(source: c(mount.source), target: c(mount.target), fstype: mount.fstype.map(c),
                                          flags: mount.flags | (mount.readOnly ? UInt(MS_RDONLY) : 0), data: mount.data.map(c),
                                          make_target: mount.make, remount: mount.readOnly ? 1 : 0, optional: mount.optional ? 1 : 0,
                                          propagation: 0)
        }
        var flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP
        if spec.userNamespace { flags |= CLONE_NEWUSER }
        let capabilities = ContainerRuntime.defaultCapabilities.reduce(UInt64(0)) { $0 | (1 << UInt64($1.number)) }

        var description = clinux_container()
        description.clone_flags = Int32(flags)
        description.hostname = c(spec.hostname)
        description.root = c(rootMount)
        if let layers {
            description.lower = c(layers.lower)
            description.upper = c(layers.upper)
            description.work = c(layers.work)
        }
        description.overlay_userxattr = spec.userNamespace ? 1 : 0
        description.read_only_root = spec.readOnly ? 1 : 0
        description.mounts = UnsafePointer(cMounts)
        description.mount_count = Int32(list.count)
        description.symlinks = links
        description.symlink_count = Int32(ContainerRuntime.deviceSymlinks.count)
        description.masked_paths = UnsafeRawPointer(masked).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
        description.masked_count = Int32(ContainerRuntime.maskedPaths.count)
        description.readonly_paths = UnsafeRawPointer(readOnly).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
        description.readonly_count = Int32(ContainerRuntime.readOnlyPaths.count)
        description.loopback_up = spec.network == .loopback ? 1 : 0
        description.process = ChildDescription.process(path: c(program), argv: argv, envp: envp, cwd: c("/"), capabilities: capabilities)
        description.sync_fd = syncFD
        description.ready_fd = -1
        description.exec_fd = execFD
        description.error_fd = errorFD
        return clinux_container_spawn(&description)
    }

    /// Root in the container with `capabilities` in every set but the ambient one, no new
    /// privileges, no seccomp filter, the terminal and limits it inherits.
    static func process(path: UnsafePointer<CChar>, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
                        envp: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, cwd: UnsafePointer<CChar>,
                        capabilities: UInt64) -> clinux_process {
        var process = clinux_process()
        process.path = path
        process.argv = UnsafePointer(argv)
        process.envp = UnsafePointer(envp)
        process.cwd = cwd
        process.set_ids = 1
        process.umask = -1
        process.cap_bounding = capabilities
        process.cap_effective = capabilities
        process.cap_permitted = capabilities
        process.cap_inheritable = capabilities
        process.no_new_privileges = 1
        process.personality = -1
        process.console_fd = -1
        return process
    }
}

