import GuestImages
import HostOS
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// The full-disk shape of the libvirt guest (`--disk`): the same image as an ext4 root disk
/// (`mke2fs -d`, e2fsprogs) attached as virtio-blk, and an initramfs that loads the virtio
/// modules and switches root to it (tandem-init's `tandem.root=`), as a distro's initramfs does.
enum DiskGuest {
    /// What the first stage needs to reach the disk, by modprobe name: the virtio transports for
    /// microvm (virtio-mmio) and for pc/q35 (virtio-pci), the block driver and ext4. Which of them
    /// are modules, and what each needs, comes from the kernel's modules.dep (`KernelModules`).
    static let modules = GuestImage.virtioModules + ["virtio_pci"]
    /// What the disk has and the initramfs has not: a workload can tell where its root came from.
    static let marker = "etc/tandem-disk"
    static let diskMiB = 64

    /// Writes `root.ext4` (the guest image) and `initramfs-disk.cpio` into `directory`; returns their paths.
    static func prepare(kernel: String, directory: String) throws(ImageError) -> (disk: String, initramfs: String) {
        let initramfs = try firstStage(kernel: kernel, directory: directory)
        return (try rootDisk(directory: directory), initramfs)
    }

    /// Writes `root.ext4` into `directory`: the guest image plus `marker`, as ext4; returns its path.
    static func rootDisk(directory: String) throws(ImageError) -> String {
        guard let rootfs = CtrRunner.defaultImage() else { throw ImageError(description: "a root disk needs the image: run `make image` (tandem image build)") }
        let staging = directory + "/root"
        guard Subprocess.runQuietly("/bin/cp", ["-a", rootfs, staging]) == 0 else { throw ImageError(description: "cannot copy \(rootfs)") }
        defer { Files.removeTree(staging) }
        do { try Files.write(staging + "/" + marker, Array("root=disk\n".utf8)) } catch { throw ImageError(description: "\(error)") }
        let disk = directory + "/root.ext4"
        try makeExt4(from: staging, to: disk, mebibytes: diskMiB)
        return disk
    }

    /// The first stage: the guest image (tandem-init as /init) plus the modules that reach an
    /// ext4 root on virtio-blk, and the list tandem-init loads them by, plus `adding` (a user's
    /// image's /.tandem/run, which tandem-init copies to the disk). Returns its path.
    static func firstStage(kernel: String, directory: String, adding: [ImageEntry] = []) throws(ImageError) -> String {
        guard let programs = TinyGuests.buildDirectory(named: "bin") else {
            throw ImageError(description: "a disk guest needs the guest programs: run `make guests`")
        }
        let release = String((kernel.split(separator: "/").last ?? "").dropFirst("vmlinuz-".count))
        var entries = try GuestImage.assemble(.init(programs: programs, modules: (modules, "/lib/modules/\(release)"))).entries
        entries += adding
        let initramfs = directory + "/initramfs-disk.cpio"
        do { try Files.write(initramfs, CpioWriter.archive(CpioWriter.sorted(entries))) } catch {
            throw ImageError(description: "cannot write \(initramfs): \(error)")
        }
        return initramfs
    }

    /// A qcow2 overlay at `path` on the raw disk `base` (`qemu-img create -b`, qemu-utils): the
    /// guest writes into the overlay, `base` is only read (QEMU opens a backing file read-only).
    static func overlay(on base: String, at path: String) throws(ImageError) {
        guard let qemuImg = Files.which("qemu-img") else { throw ImageError(description: "a run from a shared disk needs qemu-img (apt-get install qemu-utils)") }
        let result: Subprocess.Result
        do { result = try Subprocess.run(qemuImg, ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, path]) } catch {
            throw ImageError(description: "qemu-img: \(error)")
        }
        guard result.status == 0 else { throw ImageError(description: "qemu-img create -b \(base) \(path) failed: \(result.output)") }
    }

    /// An ext4 image of `directory` (mke2fs -d, e2fsprogs).
    static func makeExt4(from directory: String, to disk: String, mebibytes: Int) throws(ImageError) {
        guard let mke2fs = Files.which("mke2fs") else { throw ImageError(description: "a disk guest needs mke2fs (apt-get install e2fsprogs)") }
        let result: Subprocess.Result
        do { result = try Subprocess.run(mke2fs, ["-q", "-t", "ext4", "-d", directory, "-F", disk, "\(mebibytes)M"]) } catch {
            throw ImageError(description: "mke2fs: \(error)")
        }
        guard result.status == 0 else { throw ImageError(description: "mke2fs -d \(directory) \(disk) failed: \(result.output)") }
    }
}
