import HostOS

/// Which module files a guest's initramfs needs, in load order, from the kernel's own
/// `modules.dep` and `modules.builtin` (what modprobe reads) — never from a list written for one
/// kernel build: Debian's cloud kernel has ext4 built in and virtio as modules, its standard
/// `linux-image-amd64` builds other things as modules, and other distributions differ again.
public enum KernelModules {
    /// The module files (paths relative to `/lib/modules/RELEASE`) to load, dependencies first,
    /// for `names` (as modprobe takes them: `virtio_blk`, `virtio-pci`); built-in ones need none.
    /// An unknown name is an error naming the kernel.
    public static func loadOrder(_ names: [String], modulesDirectory: String) throws(ImageError) -> [String] {
        guard let dep = Files.readText(modulesDirectory + "/modules.dep") else {
            throw ImageError(description: "\(modulesDirectory)/modules.dep: missing (run depmod for this kernel, or install its modules package)")
        }
        let builtin = Set((Files.readText(modulesDirectory + "/modules.builtin") ?? "").split(separator: "\n").map { moduleName(String($0)) })
        var dependencies: [String: (path: String, needs: [String])] = [:]
        for line in dep.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let path = String(line[..<colon])
            let needs = line[line.index(after: colon)...].split(separator: " ").map(String.init)
            dependencies[moduleName(path)] = (path, needs)
        }
        var order: [String] = []
        for name in names {
            let key = moduleName(name)
            if builtin.contains(key) { continue }
            guard let entry = dependencies[key] else {
                throw ImageError(description: "kernel module \(name): neither in \(modulesDirectory)/modules.dep nor built in")
            }
            // modules.dep lists every dependency, each after the ones that need it: load from the end.
            for path in entry.needs.reversed() + [entry.path] where !order.contains(path) { order.append(path) }
        }
        return order
    }

    /// "kernel/drivers/block/virtio_blk.ko.xz" → "virtio_blk" (dashes read as underscores, as modprobe does).
    static func moduleName(_ path: String) -> String {
        var base = String(path.split(separator: "/").last ?? "")
        for suffix in [".xz", ".zst", ".gz"] where base.hasSuffix(suffix) { base = String(base.dropLast(suffix.count)) }
        if base.hasSuffix(".ko") { base = String(base.dropLast(3)) }
        return base.replacingDashes()
    }
}

private extension String {
    func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
}
