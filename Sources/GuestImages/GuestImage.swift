#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// Why an image could not be built, naming the missing or unreadable input.
public struct ImageError: Error, CustomStringConvertible {
    public let description: String
    public init(description: String) { self.description = description }
}

/// The one guest image every backend runs: tandem-init as /init (PID 1 everywhere), busybox with
/// its applets as relative symlinks, the workloads in /bin, and the few device nodes a kernel
/// needs before devtmpfs is mounted. See docs/guest-image.md.
public struct GuestImage {
    /// Where the inputs come from.
    public struct Inputs {
        /// guest-images/build/bin: tandem-init and the workload programs (`make guests`).
        public var programs: String
        /// A static busybox (Debian's busybox-static installs /bin/busybox).
        public var busybox: String
        /// Kernel modules to carry, by modprobe name, with the kernel's modules directory
        /// (`/lib/modules/RELEASE`): they and what they need go to lib/modules/tandem/ with the
        /// list tandem-init loads them by (lib/modules/tandem.load). None: the image has no modules.
        public var modules: (names: [String], directory: String)?
        /// Dynamically linked host programs to carry, with their libraries (`HostPrograms`).
        public var hostPrograms: [(name: String, path: String)]

        public init(programs: String, busybox: String = "/bin/busybox", modules: (names: [String], directory: String)? = nil,
                    hostPrograms: [(name: String, path: String)] = []) {
            self.programs = programs
            self.busybox = busybox
            self.modules = modules
            self.hostPrograms = hostPrograms
        }
    }

    /// The modules the guest image carries for a distro kernel: virtio-mmio, virtio-blk (a
    /// microVM's `--drive` disks appear as /dev/vdX), virtio-net (`--net`: eth0), the virtio
    /// vsock transport (`--vsock`: AF_VSOCK) and ext4 for `--root-disk` (tandem-init loads them
    /// when the VM has virtio-mmio devices). A kernel with them built in (Debian's cloud kernel
    /// has ext4) needs none.
    public static let virtioModules = ["virtio_mmio", "virtio_blk", "virtio_net", "vmw_vsock_virtio_transport", "ext4"]

    /// The workload programs an image carries (each a static binary in `programs`).
    public static let workloads = ["compute", "probe", "memory", "io", "blkio", "netio", "vsockio", "http"]

    public var entries: [ImageEntry]

    /// Assembles the image's entries from `inputs`; the bytes depend only on the inputs.
    public static func assemble(_ inputs: Inputs) throws(ImageError) -> GuestImage {
        var entries: [ImageEntry] = ["bin", "dev", "etc", "proc", "root", "run", "sys", "tmp"].map {
            ImageEntry(path: $0, kind: .directory, permissions: $0 == "tmp" ? 0o1777 : ($0 == "root" ? 0o700 : 0o755))
        }
        entries.append(ImageEntry(path: "init", kind: .file(try read("\(inputs.programs)/tandem-init", "tandem-init (run make guests)")),
                                  permissions: 0o755))
        entries.append(ImageEntry(path: "bin/tandem-init", kind: .symlink("../init"), permissions: 0o777))
        for workload in workloads {
            entries.append(ImageEntry(path: "bin/\(workload)",
                                      kind: .file(try read("\(inputs.programs)/\(workload)", "the \(workload) workload (run make guests)")),
                                      permissions: 0o755))
        }
        entries.append(ImageEntry(path: "bin/busybox", kind: .file(try read(inputs.busybox, "busybox (apt-get install busybox-static)")),
                                  permissions: 0o755))
        let taken = Set(entries.map(\.path))
        for applet in try busyboxApplets(inputs.busybox) where !taken.contains("bin/\(applet)") {
            entries.append(ImageEntry(path: "bin/\(applet)", kind: .symlink("busybox"), permissions: 0o777))
        }
        entries.append(ImageEntry(path: "dev/console", kind: .characterDevice(major: 5, minor: 1), permissions: 0o600))
        entries.append(ImageEntry(path: "dev/null", kind: .characterDevice(major: 1, minor: 3), permissions: 0o666))
        entries.append(ImageEntry(path: "etc/passwd", kind: .file(Array("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".utf8)), permissions: 0o644))
        entries.append(ImageEntry(path: "etc/group", kind: .file(Array("root:x:0:\nnogroup:x:65534:\n".utf8)), permissions: 0o644))
        entries.append(ImageEntry(path: "etc/hostname", kind: .file(Array("tandem\n".utf8)), permissions: 0o644))
        if let modules = inputs.modules { entries += try KernelModules.imageEntries(modules.names, modulesDirectory: modules.directory) }
        // (Directories both add, such as lib, once.)
        let present = Set(entries.map(\.path))
        entries += try HostPrograms.imageEntries(inputs.hostPrograms).filter { $0.kind != .directory || !present.contains($0.path) }
        return GuestImage(entries: CpioWriter.sorted(entries))
    }

    /// The initramfs: the image as a newc cpio archive with every mtime 0 (byte-identical rebuilds).
    public func initramfs() -> [UInt8] { CpioWriter.archive(entries) }

    static func read(_ path: String, _ what: String) throws(ImageError) -> [UInt8] {
        guard Files.kind(path) == .regular else { throw ImageError(description: "missing \(what): \(path)") }
        do { return try Files.read(path) } catch { throw ImageError(description: "cannot read \(what): \(error)") }
    }

    /// `busybox --list`, sorted: the applets to link (shells, coreutils, mount, ...).
    static func busyboxApplets(_ busybox: String) throws(ImageError) -> [String] {
        let result: Subprocess.Result
        do { result = try Subprocess.run(busybox, ["--list"], mergeStandardError: false) } catch {
            throw ImageError(description: "cannot run \(busybox) --list: \(error)")
        }
        guard result.status == 0 else { throw ImageError(description: "\(busybox) --list failed with status \(result.status)") }
        return result.output.split(separator: "\n").map(String.init).filter { !$0.isEmpty && !$0.contains("/") }.sorted()
    }
}

extension GuestImage {
    /// Writes the image as a directory tree (the containers' read-only lower layer): the same
    /// entries as the initramfs, minus device nodes (a container runtime makes its own /dev).
    /// Written beside `path` and renamed into place, so a reader never sees half a tree; every
    /// mtime is 0, as in the archive.
    public func writeRootfs(to path: String) throws(ImageError) {
        let temporary = path + ".partial"
        Files.removeTree(temporary)
        do {
            guard mkdir(temporary, 0o755) == 0 else { throw SystemError("mkdir", temporary) }
            for entry in entries {
                let target = temporary + "/" + entry.path
                switch entry.kind {
                case .directory:
                    guard mkdir(target, mode_t(entry.permissions)) == 0 || errno == EEXIST else { throw SystemError("mkdir", target) }
                    chmod(target, mode_t(entry.permissions))
                case .file(let bytes):
                    try Files.write(target, bytes, mode: mode_t(entry.permissions))
                    chmod(target, mode_t(entry.permissions))
                case .symlink(let destination):
                    guard symlink(destination, target) == 0 else { throw SystemError("symlink", target) }
                case .characterDevice, .blockDevice, .fifo:
                    continue
                }
            }
            // Fixed times, deepest first so a directory's time is set after its contents change.
            var times = [timespec(tv_sec: 0, tv_nsec: 0), timespec(tv_sec: 0, tv_nsec: 0)]
            for entry in entries.reversed() {
                utimensat(AT_FDCWD, temporary + "/" + entry.path, &times, AT_SYMLINK_NOFOLLOW)
            }
            utimensat(AT_FDCWD, temporary, &times, 0)
            Files.removeTree(path)
            guard rename(temporary, path) == 0 else { throw SystemError("rename", temporary) }
        } catch {
            Files.removeTree(temporary)
            throw ImageError(description: "cannot write the rootfs: \(error)")
        }
    }
}

