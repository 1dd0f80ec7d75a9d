import Foundation
import GuestImages
import Testing

@Suite("Kernel modules from modules.dep")
struct KernelModulesTests {
    /// A kernel laid out as Debian's standard one: kvm_amd needs ccp (what broke the hard-coded list).
    func fixture() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("modules-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        kernel/arch/x86/kvm/kvm-amd.ko.xz: kernel/arch/x86/kvm/kvm.ko.xz kernel/drivers/crypto/ccp/ccp.ko.xz kernel/virt/lib/irqbypass.ko.xz
        kernel/arch/x86/kvm/kvm.ko.xz: kernel/virt/lib/irqbypass.ko.xz
        kernel/drivers/crypto/ccp/ccp.ko.xz:
        kernel/virt/lib/irqbypass.ko.xz:
        kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
        kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
        kernel/drivers/virtio/virtio_ring.ko:
        """.write(toFile: directory + "/modules.dep", atomically: true, encoding: .utf8)
        try "kernel/fs/ext4/ext4.ko\n".write(toFile: directory + "/modules.builtin", atomically: true, encoding: .utf8)
        return directory
    }

    @Test("dependencies first, each once; built-in modules need nothing; dashes and underscores alike")
    func order() throws {
        let directory = try fixture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let order = try KernelModules.loadOrder(["kvm_amd", "ext4", "virtio-blk", "kvm"], modulesDirectory: directory)
        #expect(order == ["kernel/virt/lib/irqbypass.ko.xz", "kernel/drivers/crypto/ccp/ccp.ko.xz", "kernel/arch/x86/kvm/kvm.ko.xz",
                          "kernel/arch/x86/kvm/kvm-amd.ko.xz", "kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
                          "kernel/drivers/block/virtio_blk.ko"])
    }

    @Test("softdeps come first, through modules.alias, preferring the generic implementation (Debian's standard kernel: ext4 needs crc32c)")
    func softdeps() throws {
        let directory = try fixture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try """
        kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
        kernel/lib/crc16.ko:
        kernel/fs/mbcache.ko:
        kernel/fs/jbd2/jbd2.ko:
        kernel/crypto/crc32c_generic.ko:
        kernel/arch/x86/crypto/crc32c-intel.ko:
        """.write(toFile: directory + "/modules.dep", atomically: true, encoding: .utf8)
        try "".write(toFile: directory + "/modules.builtin", atomically: true, encoding: .utf8)
        try "softdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\n".write(toFile: directory + "/modules.softdep", atomically: true, encoding: .utf8)
        try "alias crypto-crc32c crc32c_intel\nalias crypto-crc32c crc32c_generic\n".write(toFile: directory + "/modules.alias", atomically: true, encoding: .utf8)
        let order = try KernelModules.loadOrder(["ext4"], modulesDirectory: directory)
        #expect(order == ["kernel/crypto/crc32c_generic.ko", "kernel/fs/jbd2/jbd2.ko", "kernel/fs/mbcache.ko", "kernel/lib/crc16.ko", "kernel/fs/ext4/ext4.ko"])
    }

    @Test("an unknown module and a missing modules.dep are named")
    func errors() throws {
        let directory = try fixture()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect { try KernelModules.loadOrder(["nosuch"], modulesDirectory: directory) } throws: {
            "\($0)".contains("kernel module nosuch: neither in \(directory)/modules.dep nor built in")
        }
        #expect { try KernelModules.loadOrder(["virtio_blk"], modulesDirectory: "/nonexistent") } throws: { "\($0)".contains("modules.dep: missing") }
    }

    @Test("this host's kernels: virtio_blk comes after virtio_ring and virtio", .enabled(if: Self.installed != nil, "no /lib/modules here"))
    func installedKernel() throws {
        let directory = "/lib/modules/" + Self.installed!
        let order = try KernelModules.loadOrder(["virtio_blk"], modulesDirectory: directory)
        let names = order.map { ($0 as NSString).lastPathComponent.components(separatedBy: ".ko")[0] }
        if !names.isEmpty {
            #expect(names.last == "virtio_blk")
            #expect(names.firstIndex(of: "virtio_ring").map { $0 < names.count - 1 } ?? true)
        }
    }

    static let installed = (try? FileManager.default.contentsOfDirectory(atPath: "/lib/modules"))?.first {
        FileManager.default.fileExists(atPath: "/lib/modules/\($0)/modules.dep")
    }
}
