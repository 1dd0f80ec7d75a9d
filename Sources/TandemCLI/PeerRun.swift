import Cgroups
import Containers
import HostOS
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem run IMAGE --as crun|runc`: the same image, through a peer runtime, on an OCI bundle made
/// for the run — config.json from the same definition `tandem ctr run` uses (`ContainerSpec.ociConfig`:
/// the image's command, env, working directory and user, the same namespaces, mounts and
/// capabilities), and as rootfs an overlay of the image's layers under a scratch tmpfs.
///
/// Tandem runs this in a mount namespace of its own (re-executed under `unshare --mount
/// --propagation private`, before any thread exists), so the overlay and the tmpfs are never in
/// the host's mount table and go with the namespace whatever happens to tandem; the bundle's
/// directory holds a lock while it runs and the next run sweeps one whose run died.
enum PeerRun {
    static let marker = "TANDEM_PEER_PRIVATE_MOUNTS"

    /// Re-executes tandem in a private mount namespace (once); there, hides the hybrid layout's
    /// empty cgroup2 mount from crun 1.8 (PLATFORM.md).
    static func enterPrivateMountNamespace() throws(ContainerError) {
        if getenv(marker) != nil {
            if Files.filesystemMagic("/sys/fs/cgroup/unified") == 0x6367_7270 { umount2("/sys/fs/cgroup/unified", 0) }
            return
        }
        guard let unshare = Files.which("unshare"), let executable = Files.currentExecutable() else {
            throw ContainerError("run --as crun/runc: unshare (util-linux) is needed to keep the bundle's mounts off the host")
        }
        setenv(marker, "1", 1)
        let argv = [unshare, "--mount", "--propagation", "private", "--", executable] + Array(CommandLine.arguments.dropFirst())
        let cArguments: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        execv(unshare, cArguments)
        throw ContainerError(SystemError("execv", unshare).description)
    }

    static func run(_ options: CtrRunOptions, runtime: String) throws(ContainerError) -> Int32 {
        guard let binary = Files.which(runtime) else { throw ContainerError("run --as \(runtime): \(runtime) is not installed") }
        guard !options.detach else { throw ContainerError("run --as \(runtime): -d is for --as container only") }
        guard options.report == nil else { throw ContainerError("run --as \(runtime): --report is for --as container only") }
        // The bridge's lease and veth are made by Tandem's engine around its own container.
        guard options.net != "bridge", options.publish.isEmpty else {
            throw ContainerError("run --as \(runtime): \(options.publish.isEmpty ? "--net bridge" : "--publish") is for --as container only")
        }
        guard getuid() == 0 else { throw ContainerError("run --as \(runtime): needs root (the bundle's overlay is mounted by tandem)") }
        try enterPrivateMountNamespace()
        let spec: ContainerSpec
        switch CtrRunner.makeSpec(options) {
        case .success(let made): spec = made
        case .failure(let error): throw error
        }
        guard case .layers(let layers) = spec.root else { throw ContainerError("run --as \(runtime): an image from the store only") }
        _ = try spec.validate()

        let bundles = spec.stateRoot + "/.bundles"
        sweep(bundles)
        let bundle = bundles + "/" + spec.id
        for directory in [spec.stateRoot, bundles, bundle] where mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw ContainerError(SystemError("mkdir", directory).description)
        }
        let lock = open(bundle, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if lock >= 0 { flock(lock, LOCK_SH) }
        defer {
            umount2(bundle + "/rootfs", Int32(MNT_DETACH))
            umount2(bundle + "/scratch", Int32(MNT_DETACH))
            _ = Subprocess.runQuietly("/bin/rm", ["-rf", bundle])
            if lock >= 0 { close(lock) }
        }
        for directory in ["scratch", "rootfs"] where mkdir(bundle + "/" + directory, 0o755) != 0 {
            throw ContainerError(SystemError("mkdir", bundle + "/" + directory).description)
        }
        guard mount("tmpfs", bundle + "/scratch", "tmpfs", UInt(MS_NOSUID | MS_NODEV), "mode=755") == 0 else {
            throw ContainerError(SystemError("mount tmpfs", bundle + "/scratch").description)
        }
        for directory in ["upper", "work"] where mkdir(bundle + "/scratch/" + directory, 0o755) != 0 {
            throw ContainerError(SystemError("mkdir", bundle + "/scratch/" + directory).description)
        }
        let options = "lowerdir=\(layers.joined(separator: ":")),upperdir=\(bundle)/scratch/upper,workdir=\(bundle)/scratch/work"
        guard mount("overlay", bundle + "/rootfs", "overlay", 0, options) == 0 else {
            throw ContainerError(SystemError("mount overlay", bundle + "/rootfs").description)
        }
        let config = spec.ociConfig(rootPath: bundle + "/rootfs")
        do { try Files.write(bundle + "/config.json", Array(config.serialized(indent: 2).utf8), mode: 0o600) } catch {
            throw ContainerError(error.description)
        }
        // The runtime makes its cgroup under Tandem's parent (mkdir -p, no retry): no Tandem
        // container that ends meanwhile removes that parent; the last one out does.
        let parentLock = CgroupParentLock.holdShared()
        defer { CgroupParentLock.releaseAndRemove(parentLock, parent: ContainerRuntime.cgroupParent) }
        // In the foreground with our stdio: Ctrl-C reaches it directly, SIGTERM and SIGHUP are passed on.
        do { return try Subprocess.foreground(binary, ["run", "--bundle", bundle, spec.id]) } catch { throw ContainerError(error.description) }
    }

    /// Removes bundle directories whose run is gone (nobody holds their lock).
    static func sweep(_ bundles: String) {
        for name in Files.list(bundles) {
            let path = bundles + "/" + name
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { continue }
            umount2(path + "/rootfs", Int32(MNT_DETACH))
            umount2(path + "/scratch", Int32(MNT_DETACH))
            _ = Subprocess.runQuietly("/bin/rm", ["-rf", path])
        }
    }
}
