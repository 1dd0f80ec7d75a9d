import Containers
import GuestImages
import HostOS
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem run IMAGE --as microvm`: the user's image in Tandem's own VMM. Until the VMM has a
/// block device, the image is the guest's initramfs: its files as the container sees them (the
/// same merged view the libvirt disk is made from, owners and modes kept; a hard link becomes a
/// copy), plus /.tandem/init and /.tandem/run; the kernel starts /.tandem/init (`rdinit=`, so an
/// image's own /init stays its own), which runs the program as in every backend. On a host
/// without hardware virtualisation Tandem's VMM refuses a Linux guest, as `tandem vm run` does.
enum ImageMicroVMRun {
    static func run(_ options: CtrRunOptions, allowEmulated: Bool) throws(ContainerError) -> Int32 {
        let (spec, program, layers) = try ImageVMRun.imageSpec(options, backend: "microvm") { () throws(ContainerError) in
            if !allowEmulated, let refusal = VMRunner.emulatedRefusal() { throw ContainerError("run --as microvm: " + refusal) }
        }
        let directory = try temporaryDirectory()
        defer { Files.removeTree(directory) }
        let (initramfs, size) = try writeInitramfs(spec: spec, program: program, layers: layers, directory: directory)
        StandardError.line("tandem: \(spec.imageName ?? "image") as the microVM's initramfs (\(size >> 20) MiB)")
        var vm = VMRunOptions()
        vm.initrd = initramfs
        vm.cmdline = commandLine
        vm.memory = memoryMiB(initramfsBytes: size)
        vm.allowEmulated = allowEmulated
        return VMRunner.run(vm, processStart: nil)
    }

    /// The kernel starts Tandem's init, not the image's own /init.
    static let commandLine = "rdinit=/.tandem/init"

    /// The guest's RAM: the initramfs is unpacked into it, beside what the program needs.
    static func memoryMiB(initramfsBytes: Int) -> Int { max(256, (initramfsBytes >> 20) * 3 + 128) }

    static func temporaryDirectory() throws(ContainerError) -> String {
        var template = Array("/tmp/tandem-microvm.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ContainerError(SystemError("mkdtemp", "/tmp/tandem-microvm.XXXXXX").description) }
        return String(cString: made)
    }

    /// DIRECTORY/image.cpio: the image's merged files and /.tandem; returns its path and size.
    /// Call in a private mount namespace (PeerRun.enterPrivateMountNamespace).
    static func writeInitramfs(spec: ContainerSpec, program: String, layers: [String], directory: String) throws(ContainerError) -> (String, Int) {
        guard let programs = TinyGuests.buildDirectory(named: "bin"), Files.kind(programs + "/tandem-init") == .regular else {
            throw ContainerError("tandem-init is not built (make guests)")
        }
        let initramfs = directory + "/image.cpio"
        do {
            let files = [("init", try Files.read(programs + "/tandem-init"), mode_t(0o755)), ("run", try ImageVMRun.runFile(spec: spec, program: program), mode_t(0o644))]
            let merged = try ImageVMRun.mountMerged(layers: layers, files: files, directory: directory)
            defer { umount2(merged, Int32(MNT_DETACH)) }
            let archive = CpioWriter.archive(try entries(of: merged))
            try Files.write(initramfs, archive)
            return (initramfs, archive.count)
        } catch let error as ContainerError { throw error } catch { throw ContainerError("\(error)") }
    }

    /// Every file under `root` as cpio entries: owners and permission bits kept, symlinks as
    /// links (never followed), device nodes and fifos as nodes, hard links as copies.
    static func entries(of root: String) throws(ContainerError) -> [ImageEntry] {
        var out: [ImageEntry] = []
        func walk(_ relative: String) throws(ContainerError) {
            let path = relative.isEmpty ? root : root + "/" + relative
            for name in Files.list(path) {
                let inner = relative.isEmpty ? name : relative + "/" + name
                var info = stat()
                guard lstat(root + "/" + inner, &info) == 0 else { throw ContainerError(SystemError("lstat", inner).description) }
                let permissions = UInt32(info.st_mode & 0o7777), uid = UInt32(info.st_uid), gid = UInt32(info.st_gid)
                let kind: ImageEntry.Kind
                switch info.st_mode & S_IFMT {
                case S_IFDIR: kind = .directory
                case S_IFREG:
                    do { kind = .file(try Files.read(root + "/" + inner)) } catch { throw ContainerError(error.description) }
                case S_IFLNK:
                    guard let target = Files.readLink(root + "/" + inner) else { throw ContainerError(SystemError("readlink", inner).description) }
                    kind = .symlink(target)
                case S_IFCHR: kind = .characterDevice(major: UInt32(info.st_rdev >> 8 & 0xfff), minor: UInt32((info.st_rdev & 0xff) | (info.st_rdev >> 12 & 0xfff00)))
                case S_IFBLK: kind = .blockDevice(major: UInt32(info.st_rdev >> 8 & 0xfff), minor: UInt32((info.st_rdev & 0xff) | (info.st_rdev >> 12 & 0xfff00)))
                case S_IFIFO: kind = .fifo
                default: continue  // sockets: nothing to carry
                }
                out.append(ImageEntry(path: inner, kind: kind, permissions: permissions, uid: uid, gid: gid))
                if case .directory = kind { try walk(inner) }
            }
        }
        try walk("")
        return out
    }
}
