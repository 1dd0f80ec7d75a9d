import ArgumentParser
import GuestImages
import HostOS
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem image build`: writes the initramfs from guest-images/build (reproducibly).
struct ImageBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Write the guest image as an initramfs (newc cpio) and as a rootfs directory; unchanged inputs give identical bytes."
    )

    @Option(name: .long, help: ArgumentHelp("Directory to write initramfs.cpio into.", valueName: "dir"))
    var out: String?

    @Option(name: .long, help: ArgumentHelp("Directory with tandem-init and the workloads (default: guest-images/build/bin, found as the tiny guests are).", valueName: "dir"))
    var programs: String?

    @Option(name: .long, help: ArgumentHelp("A static busybox.", valueName: "path"))
    var busybox = "/bin/busybox"

    @Option(name: .long, help: ArgumentHelp("The kernel whose virtio modules (virtio_mmio, virtio_blk and what they need, from its modules.dep) the image carries for microVM disks (default: the newest /boot/vmlinuz-*-cloud-amd64; none installed: no modules).", valueName: "path"))
    var kernel: String?

    @Flag(name: .customLong("with-redis"), help: "Also carry Debian's redis-server (redis-tools) and its libraries, for `tandem bench --workloads redis` (the image grows from ~10 to ~27 MB, which every microVM boot then loads).")
    var withRedis = false

    func run() throws {
        guard let programs = programs ?? TinyGuests.buildDirectory(named: "bin") else {
            throw fail("guest programs not found: run `make guests` in the Tandem checkout, or pass --programs DIR")
        }
        let outDirectory = out ?? Files.directory(of: programs) + "/image"
        var modules: (names: [String], directory: String)?
        if let kernel = kernel ?? LinuxDefaults.kernel() {
            let base = kernel.split(separator: "/").last.map(String.init) ?? kernel
            guard Files.kind(kernel) == .regular, base.hasPrefix("vmlinuz-") else {
                throw fail("--kernel \(kernel): must be an existing /boot/vmlinuz-RELEASE whose modules are in /lib/modules/RELEASE")
            }
            modules = (GuestImage.virtioModules, "/lib/modules/" + base.dropFirst("vmlinuz-".count))
        } else {
            StandardError.line("tandem: no Linux kernel in /boot: the image carries no virtio modules (microVM disks need a kernel with them built in)")
        }
        // The redis server workload, on request: its libraries almost triple the image.
        var hostPrograms: [(name: String, path: String)] = []
        if withRedis {
            guard Files.kind(HostPrograms.redis.path) == .regular else {
                throw fail("--with-redis: \(HostPrograms.redis.path) is missing (Debian's package redis-tools; make deps installs it)")
            }
            hostPrograms.append(HostPrograms.redis)
        }
        let image: GuestImage
        do { image = try GuestImage.assemble(.init(programs: programs, busybox: busybox, modules: modules, hostPrograms: hostPrograms)) } catch {
            throw fail(error.description)
        }
        if Files.kind(outDirectory) == .missing, mkdir(outDirectory, 0o755) != 0 {
            throw fail("cannot create --out directory: \(SystemError("mkdir", outDirectory))")
        }
        guard Files.kind(outDirectory) == .directory else { throw fail("--out \(outDirectory) is not a directory") }
        let bytes = image.initramfs()
        let path = outDirectory + "/initramfs.cpio"
        // Write beside, then rename: a reader never sees half an image, and a failure leaves none.
        let temporary = path + ".partial"
        do {
            try Files.write(temporary, bytes)
            guard rename(temporary, path) == 0 else { throw SystemError("rename", temporary) }
        } catch {
            unlink(temporary)
            throw fail("cannot write the image: \(error)")
        }
        StandardOutput.write("\(path): \(bytes.count) bytes, \(image.entries.count) entries\n")
        // The same image as a directory: the read-only lower layer every container shares.
        let rootfs = outDirectory + "/rootfs"
        do { try image.writeRootfs(to: rootfs) } catch { throw fail(error.description) }
        StandardOutput.write("\(rootfs): the same image as a directory (containers' lower layer)\n")
    }
}
