import Bench
import Containers
import GuestImages
import HostFacts
import HostOS
import Images
import Libvirt
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem run IMAGE --as libvirt`: the user's image as a libvirt guest's root disk. The disk is
/// the image as its container sees it — an overlay of its layers, mounted read-only in tandem's
/// own mount namespace — copied into ext4 by `mke2fs -d`, plus `/.tandem/init` (tandem-init). It
/// is made once per image (and tandem-init) and kept in the store (`ImageStore.vmDisk`); each run
/// attaches it under a qcow2 overlay of its own (`qemu-img create -b`, the way virt-install and
/// cloud images are used), so the disk is never written and runs do not pay for making it. What
/// to run — the same command, env, working directory and user a container of the image gets —
/// is the run's `/.tandem/run`, in the first stage (the guest image's initramfs with the modules
/// that reach the disk, from the kernel's modules.dep); tandem-init copies it into the run's
/// overlay, switches root to the disk, prints the ready marker, runs the program and passes its
/// status out, as in every backend.
enum ImageVMRun {
    static func run(_ options: CtrRunOptions, memoryMiB: Int = 512) throws(ContainerError) -> Int32 {
        let (spec, program, layers) = try imageSpec(options, backend: "libvirt")
        guard let kernel = LinuxDefaults.kernel() else {
            throw ContainerError("run --as libvirt: no kernel: install Debian's linux-image-cloud-amd64 (make deps)")
        }
        guard let programs = TinyGuests.buildDirectory(named: "bin"), Files.kind(programs + "/tandem-init") == .regular else {
            throw ContainerError("run --as libvirt: tandem-init is not built (make guests)")
        }
        let hostMode = HostFacts.probeKVMMode(kvmPath: "/dev/kvm")
        let accelerator: DomainDefinition.Accelerator = hostMode == .hardware ? .kvm : .qemu
        StandardError.line("tandem: \(spec.imageName ?? "image") as a libvirt guest (root disk from its layers), accelerator "
            + (accelerator == .kvm ? "kvm" : "tcg (QEMU emulates the guest: this host has no hardware virtualisation)"))

        let directory: String
        do { directory = try LibvirtRun.makeDirectory() } catch { throw ContainerError(error.description) }
        var keepDirectory = false
        defer { if !keepDirectory { Files.removeTree(directory) } }
        let initramfs: String, overlay = directory + "/root.qcow2"
        let began = Clock.monotonicNanoseconds()
        let base: (path: String, made: Bool)
        do {
            let run = try runFile(spec: spec, program: program)
            base = try baseDisk(options: options, layers: layers, tandemInit: programs + "/tandem-init", directory: directory)
            try DiskGuest.overlay(on: base.path, at: overlay)
            let runEntries = [ImageEntry(path: ".tandem", kind: .directory, permissions: 0o755),
                              ImageEntry(path: ".tandem/run", kind: .file(run), permissions: 0o644)]
            initramfs = try DiskGuest.firstStage(kernel: kernel, directory: directory, adding: runEntries)
        } catch { throw ContainerError("run --as libvirt: \(error)") }
        StandardError.line("tandem: root disk \(base.made ? "made" : "reused") (\((Files.size(base.path) ?? 0) >> 20) MiB ext4, \(base.path)), "
            + "its overlay and the first stage in \((Clock.monotonicNanoseconds() - began) / 1_000_000) ms")

        var line = ""
        if accelerator == .qemu, let clock = GuestCommandLine.emulatedClock() { line = clock }
        var run = LibvirtRun.Options(accelerator: accelerator, kernel: kernel, initrd: initramfs, commandLine: line)
        run.machine = .pc
        run.memoryMiB = memoryMiB
        run.disk = overlay
        run.diskFormat = .qcow2
        run.directory = directory
        keepDirectory = true  // LibvirtRun removes it
        let report: LibvirtRun.Report
        do { report = try LibvirtRun.run(run) { bytes in _ = write(1, bytes.baseAddress, bytes.count) } } catch {
            // QEMU runs as its own user (libvirt-qemu on Debian): libvirt hands it the disk but not
            // the directories above it.
            let hint = error.description.contains("Cannot access backing file")
                ? " (the image's root disk is in the store: QEMU's user must be able to reach it; keep the store under directories others may enter, as the default \(ImageStore.defaultRoot) is, or chmod o+x the directory that is not)"
                : ""
            throw ContainerError(error.description + hint)
        }
        // QEMU is libvirt's child, not ours: its peak resident set, for the user and for the bench.
        if let peak = report.qemuPeakRSSBytes { StandardError.line("\(ImageSandbox.qemuPeakLine) \(peak >> 20) MiB resident (qemu_peak_rss_bytes=\(peak))") }
        switch report.outcome {
        case .exited(let code): return code
        case .timedOut: return 124
        case .interrupted(let signal): return 128 + signal
        case .endedWithoutResult:
            StandardError.line("tandem: guest ended without tandem-init's result line; its last console lines:")
            StandardError.write(report.consoleTail.split(separator: "\n").suffix(8).map { "  | \($0)\n" }.joined())
            return 126
        }
    }

    /// What both VM backends need first: root, no container-only option, a mount namespace of our
    /// own (the layers are mounted there to be copied), and the image's spec, program and layers.
    /// `beforeMounting` runs once the options are checked (the microVM's refusal on emulated KVM).
    static func imageSpec(_ options: CtrRunOptions, backend: String, beforeMounting: () throws(ContainerError) -> Void = {})
        throws(ContainerError) -> (spec: ContainerSpec, program: String, layers: [String]) {
        guard getuid() == 0 else { throw ContainerError("run --as \(backend): needs root (the image's layers are mounted to be copied)") }
        for (given, flag) in [(options.detach, "-d"), (options.report != nil, "--report"), (!options.volumes.isEmpty, "--volume"),
                              (options.memory != nil, "--memory"), (options.cpus != nil, "--cpus"), (options.pids != nil, "--pids"),
                              (options.userns, "--userns"), (options.name != nil, "--name"), (options.net != nil, "--net"),
                              (!options.publish.isEmpty, "--publish")] where given {
            throw ContainerError("run --as \(backend): \(flag) is for --as container (a VM has its own memory, CPUs and network)")
        }
        try beforeMounting()
        try PeerRun.enterPrivateMountNamespace()
        let spec: ContainerSpec
        switch CtrRunner.makeSpec(options) {
        case .success(let made): spec = made
        case .failure(let error): throw error
        }
        guard case .layers(let layers) = spec.root, let program = spec.program ?? spec.command.first else {
            throw ContainerError("run --as \(backend): an image from the store only")
        }
        return (spec, program, layers)
    }

    /// The image's root disk from the store (made when missing): the merged layers plus
    /// /.tandem/init, as ext4. Keyed by the layers and tandem-init's bytes, so a rebuilt
    /// tandem-init makes a new disk (which replaces the old one).
    static func baseDisk(options: CtrRunOptions, layers: [String], tandemInit: String, directory: String) throws(ContainerError) -> (path: String, made: Bool) {
        let store = ImageStore(root: options.store.map(Files.absolute) ?? ImageStore.defaultRoot)
        let initBytes: [UInt8]
        do { initBytes = try Files.read(tandemInit) } catch { throw ContainerError(error.description) }
        // The layer directories are STORE/layers/DIFFID/diff: their diff IDs, bottom first.
        let diffIDs = layers.reversed().compactMap { Digest(hex: String($0.split(separator: "/").dropLast().last ?? "")) }
        let key = Digest.of(Array(diskFormatVersion.utf8) + Array(diffIDs.map(\.description).joined(separator: "\n").utf8) + [0] + initBytes).hex
        do {
            return try store.vmDisk(layers: diffIDs, key: key) { (temporary) throws(Images.ImageError) in
                StandardError.line("tandem: making the image's root disk (once per image; later runs reuse it)")
                let merged: String
                do { merged = try mountMerged(layers: layers, files: [("init", initBytes, 0o755)], directory: directory) } catch {
                    throw Images.ImageError("\(error)")
                }
                defer { umount2(merged, Int32(MNT_DETACH)) }
                do { try DiskGuest.makeExt4(from: merged, to: temporary, mebibytes: diskMebibytes(layers)) } catch { throw Images.ImageError("\(error)") }
            }
        } catch { throw ContainerError("\(error)") }
    }

    /// Changes when what a root disk holds changes shape (part of its key).
    static let diskFormatVersion = "tandem-vm-disk/1"

    /// What tandem-init reads as /.tandem/run (guest-images/init/tandem-init.c, run_image):
    /// NUL-ended entries — path, arg each, env each, cwd, uid, gid, group each. At most 255 args
    /// and env entries, 64 groups, 64 KiB in all: more is refused here, never cut there.
    static func runFile(spec: ContainerSpec, program: String) throws(ContainerError) -> [UInt8] {
        var entries = ["path=" + program] + spec.command.map { "arg=" + $0 } + spec.environment.map { "env=" + $0 }
        entries += ["cwd=" + spec.workingDirectory, "uid=\(spec.user.uid)", "gid=\(spec.user.gid)"] + spec.user.additionalGids.map { "group=\($0)" }
        let size = entries.reduce(0) { $0 + $1.utf8.count + 1 }
        guard spec.command.count <= 255, spec.environment.count <= 255, spec.user.additionalGids.count <= 64, size < 65536 else {
            throw ContainerError("the program's command (\(spec.command.count) words), environment (\(spec.environment.count)) and groups (\(spec.user.additionalGids.count)) take \(size) bytes: a VM's tandem-init takes at most 255, 255 and 64, in 64 KiB")
        }
        guard !entries.contains(where: { $0.utf8.contains(0) }) else { throw ContainerError("a NUL byte in the command or the environment") }
        return Array(entries.joined(separator: "\0").utf8) + [0]
    }

    /// The image as a VM's root: its layers under a layer of Tandem's own holding `files` in
    /// /.tandem (init: tandem-init; run: what to run), overlaid read-only at DIRECTORY/merged (in
    /// this private mount namespace). A WorkingDir the image lacks is made by tandem-init in the
    /// guest. Returns the mount point; the caller unmounts it.
    static func mountMerged(layers: [String], files: [(name: String, bytes: [UInt8], mode: mode_t)], directory: String) throws(ContainerError) -> String {
        let extra = directory + "/tandem-layer", merged = directory + "/merged"
        for path in [extra, extra + "/.tandem", merged] where mkdir(path, 0o755) != 0 {
            throw ContainerError(SystemError("mkdir", path).description)
        }
        do {
            for file in files { try Files.write(extra + "/.tandem/" + file.name, file.bytes, mode: file.mode) }
        } catch { throw ContainerError(error.description) }
        let options = "ro,lowerdir=" + ([extra] + layers).joined(separator: ":")
        guard mount("overlay", merged, "overlay", UInt(MS_RDONLY), options) == 0 else {
            throw ContainerError(SystemError("mount overlay", merged).description)
        }
        return merged
    }

    /// The root disk's size for an image's layers: 5/4 of what they take, plus 64 MiB.
    static func diskMebibytes(_ layers: [String]) -> Int {
        let bytes = layers.reduce(Int64(0)) { $0 + DiskUsage.measure($1).allocated }
        return Int(bytes * 5 / 4 / (1 << 20)) + 64
    }
}
