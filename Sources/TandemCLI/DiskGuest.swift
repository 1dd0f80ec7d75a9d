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
    /// virtio modules in load order (modinfo's dependencies first): the transports for microvm
    /// (virtio-mmio) and for pc/q35 (virtio-pci), and the block driver.
    static let modules = ["drivers/virtio/virtio_ring", "drivers/virtio/virtio", "drivers/virtio/virtio_mmio",
                          "drivers/virtio/virtio_pci_legacy_dev", "drivers/virtio/virtio_pci_modern_dev",
                          "drivers/virtio/virtio_pci", "drivers/block/virtio_blk"]
    /// What the disk has and the initramfs has not: a workload can tell where its root came from.
    static let marker = "etc/tandem-disk"
    static let diskMiB = 64

    /// Writes `root.ext4` and `initramfs-disk.cpio` into `directory`; returns their paths.
    static func prepare(kernel: String, directory: String) throws(ImageError) -> (disk: String, initramfs: String) {
        guard let rootfs = CtrRunner.defaultImage(), let programs = TinyGuests.buildDirectory(named: "bin") else {
            throw ImageError(description: "--disk needs the image: run `make image` (tandem image build)")
        }
        let release = String((kernel.split(separator: "/").last ?? "").dropFirst("vmlinuz-".count))
        let moduleRoot = "/lib/modules/\(release)/kernel"
        guard let mke2fs = Files.which("mke2fs") else { throw ImageError(description: "--disk needs mke2fs (apt-get install e2fsprogs)") }

        // The initramfs: the guest image plus the modules and the list tandem-init loads.
        var entries = try GuestImage.assemble(.init(programs: programs)).entries
        entries += ["lib", "lib/modules", "lib/modules/tandem"].map { ImageEntry(path: $0, kind: .directory, permissions: 0o755) }
        var list = ""
        for module in modules {
            let source = "\(moduleRoot)/\(module).ko"
            guard Files.kind(source) == .regular else { throw ImageError(description: "--disk: missing kernel module \(source)") }
            let name = module.split(separator: "/").last.map(String.init)!
            do { entries.append(ImageEntry(path: "lib/modules/tandem/\(name).ko", kind: .file(try Files.read(source)), permissions: 0o644)) } catch {
                throw ImageError(description: "--disk: cannot read \(source): \(error)")
            }
            list += "/lib/modules/tandem/\(name).ko\n"
        }
        entries.append(ImageEntry(path: "lib/modules/tandem.load", kind: .file(Array(list.utf8)), permissions: 0o644))
        let initramfs = directory + "/initramfs-disk.cpio"
        do { try Files.write(initramfs, CpioWriter.archive(CpioWriter.sorted(entries))) } catch {
            throw ImageError(description: "cannot write \(initramfs): \(error)")
        }

        // The disk: the same rootfs plus the marker, as ext4.
        let staging = directory + "/root"
        guard Subprocess.runQuietly("/bin/cp", ["-a", rootfs, staging]) == 0 else { throw ImageError(description: "cannot copy \(rootfs)") }
        defer { Files.removeTree(staging) }
        do { try Files.write(staging + "/" + marker, Array("root=disk\n".utf8)) } catch { throw ImageError(description: "\(error)") }
        let disk = directory + "/root.ext4"
        let result: Subprocess.Result
        do { result = try Subprocess.run(mke2fs, ["-q", "-t", "ext4", "-d", staging, "-F", disk, "\(diskMiB)M"]) } catch {
            throw ImageError(description: "mke2fs: \(error)")
        }
        guard result.status == 0 else { throw ImageError(description: "mke2fs -d \(staging) \(disk) failed: \(result.output)") }
        return (disk, initramfs)
    }
}
