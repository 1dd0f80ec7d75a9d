import HostOS

/// Which module files a guest's initramfs needs, in load order, from the kernel's own
/// `modules.dep`, `modules.builtin`, `modules.softdep` and `modules.alias` (what modprobe reads) — never from a list written for one
/// kernel build: Debian's cloud kernel has ext4 built in and virtio as modules, its standard
/// `linux-image-amd64` builds other things as modules, and other distributions differ again.
public enum KernelModules {
    /// Where an image keeps its modules, and the list tandem-init loads them by, in order.
    public static let imageDirectory = "lib/modules/tandem"
    public static let imageLoadList = "lib/modules/tandem.load"
    /// The release the modules are for (`uname -r`): tandem-init loads none under another kernel.
    public static let imageRelease = "lib/modules/tandem.release"

    /// An image's entries for `names`: each module file they need, in load order, under
    /// `imageDirectory`, and `imageLoadList` naming them (absolute paths, one per line). Built-in
    /// modules need no file; a kernel with all of them built in gets an empty list.
    public static func imageEntries(_ names: [String], modulesDirectory: String) throws(ImageError) -> [ImageEntry] {
        var entries = ["lib", "lib/modules", imageDirectory].map { ImageEntry(path: $0, kind: .directory, permissions: 0o755) }
        var list = ""
        for relative in try loadOrder(names, modulesDirectory: modulesDirectory) {
            let source = "\(modulesDirectory)/\(relative)"
            let name = relative.split(separator: "/").last.map(String.init) ?? relative
            do { entries.append(ImageEntry(path: "\(imageDirectory)/\(name)", kind: .file(try Files.read(source)), permissions: 0o644)) } catch {
                throw ImageError(description: "cannot read kernel module \(source): \(error)")
            }
            list += "/\(imageDirectory)/\(name)\n"
        }
        entries.append(ImageEntry(path: imageLoadList, kind: .file(Array(list.utf8)), permissions: 0o644))
        let release = modulesDirectory.split(separator: "/").last.map(String.init) ?? ""
        entries.append(ImageEntry(path: imageRelease, kind: .file(Array((release + "\n").utf8)), permissions: 0o644))
        return entries
    }

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
        // modules.softdep: "softdep ext4 pre: crypto-crc32c" — what a module asks for at run time
        // (through request_module, which has no modprobe to call in a first stage): loaded before
        // it. Its names may be aliases (modules.alias: "alias crypto-crc32c crc32c_generic").
        var softPre: [String: [String]] = [:]
        for line in (Files.readText(modulesDirectory + "/modules.softdep") ?? "").split(separator: "\n") {
            let words = line.split(separator: " ").map(String.init)
            guard words.count >= 3, words[0] == "softdep" else { continue }
            var pre: [String] = [], inPre = false
            for word in words.dropFirst(2) {
                if word.hasSuffix(":") { inPre = word == "pre:"; continue }
                if inPre { pre.append(word) }
            }
            softPre[moduleName(words[1]), default: []] += pre
        }
        var aliases: [String: [String]] = [:]
        for line in (Files.readText(modulesDirectory + "/modules.alias") ?? "").split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count == 3, words[0] == "alias" else { continue }
            aliases[moduleName(String(words[1])), default: []].append(moduleName(String(words[2])))
        }
        var order: [String] = []
        var visiting: Set<String> = []
        func add(_ name: String, required: Bool) throws(ImageError) {
            let key = moduleName(name)
            if builtin.contains(key) || visiting.contains(key) { return }
            visiting.insert(key)
            guard let entry = dependencies[key] else {
                // An alias (softdeps name them): the portable implementation if there is one.
                let candidates = aliases[key] ?? []
                if let chosen = candidates.first(where: { $0.hasSuffix("_generic") }) ?? candidates.first(where: { dependencies[$0] != nil || builtin.contains($0) }) {
                    try add(chosen, required: required)
                    return
                }
                if required { throw ImageError(description: "kernel module \(name): neither in \(modulesDirectory)/modules.dep nor built in") }
                return
            }
            // modules.dep lists every dependency, each after the ones that need it: load from the end,
            // each with what it asks for first.
            for path in entry.needs.reversed() + [entry.path] {
                for soft in softPre[moduleName(path)] ?? [] { try add(soft, required: false) }
                if !order.contains(path) { order.append(path) }
            }
        }
        for name in names { try add(name, required: true) }
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
