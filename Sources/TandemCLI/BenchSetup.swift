import Bench
import Containers
import FoundationEssentials
import HostFacts
import HostOS
import Images
#if canImport(Glibc)
import Glibc
#endif

/// The pieces `tandem bench` assembles before it runs: sandboxes, host summary, footprint.
enum BenchSetup {
    static func sandboxes(_ names: [String], _ environment: BenchEnvironment) -> [any Sandbox] {
        names.map { Backends.make($0, environment) }
    }

    static func now() -> String { UTCTime.format(nanoseconds: Clock.realtimeNanoseconds(), fraction: false) }

    static func summary(_ facts: HostFacts) -> HostSummary {
        var tools: [String: String] = [:]
        for tool in facts.tools { tools[tool.name] = tool.version ?? (tool.path == nil ? "not installed" : "installed") }
        tools["tandem"] = Tandem.version
        let bootID = (Files.readText("/proc/sys/kernel/random/boot_id") ?? "").split(separator: "\n").first.map(String.init) ?? ""
        return HostSummary(cpu: facts.cpuModel + (facts.underHypervisor ? " (itself a VM)" : ""), cpus: facts.cpuCount,
                           kernel: facts.kernelRelease, virtualisation: facts.virtualisation.rawValue,
                           virtualisationExplanation: facts.virtualisation.explanation, cgroups: facts.cgroupLayout.rawValue,
                           tools: tools, bootID: bootID, hostname: facts.hostname, macs: hostMACs())
    }

    /// The network reach measurement (`NetworkReach`): the bridge held by an idle container
    /// meanwhile (so the host has its bridge address, as Docker's docker0 always exists), the
    /// host's three services up, the probe run once in each subject.
    /// Returns false if Ctrl-C or SIGTERM cut it short.
    static func runNetworkReach(_ runner: BenchRunner, wanted: [String], environment: BenchEnvironment, canary: HostCanary) throws -> Bool {
        let bridged = wanted.contains { ["container", "qemu-microvm", "libvirt", "linux-microvm"].contains($0) }
        let holder = ServerSetup.holdBridge(environment, needed: bridged)
        defer { ServerSetup.release(holder, environment) }
        let services: HostServices
        do { services = try HostServices(nonce: canary.nonce, abstractName: canary.keyDescription, bridgeAddress: BridgeNetwork.gateway) } catch {
            throw fail("bench: network reach: \(error)")
        }
        defer { services.stop() }
        let (subjects, notes) = NetworkReach.subjects(wanted, environment: environment, arguments: NetworkReach.probeArguments(canary: canary, services: services),
                                                      bridge: services.onBridge, libvirtUp: access("/run/libvirt/libvirt-sock", F_OK) == 0)
        do { return try runner.runNetworkReach(subjects, notes: notes) { StandardError.line("bench: \($0)") } } catch { throw fail("bench: \(error)") }
    }

    /// Removes the temp directories of benches that were killed (their owner pid is gone): the
    /// bundles, state and canary file they held.
    static func sweepWorkDirectories() {
        for name in Files.list("/tmp") where name.hasPrefix("tandem-bench.") {
            let directory = "/tmp/" + name
            guard let owner = Files.readText(directory + "/owner").flatMap({ pid_t($0.prefix { $0 != "\n" }) }),
                  owner != getpid(), !ProcessInfoLite.isAlive(owner) else { continue }
            Files.removeTree(directory)
        }
    }

    /// The hardware addresses of the host's interfaces, loopback's (all zeros) left out.
    static func hostMACs() -> [String] {
        Files.list("/sys/class/net").compactMap { name in
            Files.readText("/sys/class/net/\(name)/address").map { String($0.prefix { $0 != "\n" }) }
        }.filter { !$0.isEmpty && $0 != "00:00:00:00:00:00" }.sorted()
    }

    /// Bytes of each artifact a backend needs; shared ones are listed once.
    static func footprint(_ environment: BenchEnvironment) -> [Artifact] {
        var artifacts: [Artifact] = []
        if let kernel = environment.kernel, let size = Files.size(kernel) {
            artifacts.append(Artifact(name: "guest kernel (bzImage)", bytes: UInt64(size), usedBy: ["linux-microvm", "libvirt", "qemu-microvm"],
                                      note: "shared by every VM; containers use the host's kernel"))
        }
        if let initramfs = environment.initramfs, let size = Files.size(initramfs) {
            artifacts.append(Artifact(name: "initramfs (the same image, for VMs)", bytes: UInt64(size), usedBy: ["linux-microvm", "libvirt", "qemu-microvm"],
                                      note: "read into each VM's RAM at boot"))
        }
        if let rootfs = environment.rootfs {
            artifacts.append(Artifact(name: "image rootfs (containers' shared lower layer)", bytes: directoryBytes(rootfs),
                                      usedBy: ["container", "crun", "runc", "process"], note: "stored once; each Tandem container adds an empty upper layer"))
        }
        if let tiny = environment.tinyDirectory, let size = Files.size(tiny + "/hello.bin") {
            artifacts.append(Artifact(name: "tiny guest hello.bin", bytes: UInt64(size), usedBy: ["tiny-microvm"], note: "a flat binary, no OS"))
        }
        return artifacts
    }

    /// `--image`: the image's layers (stored once, shared by every container backend) and the VM's
    /// root disk made from them (once per image, kept in the store and shared by its runs; until
    /// one is made, its size as `tandem run --as libvirt` would make it).
    static func imageFootprint(_ reference: String, store root: String?, backends: [String], command: [String] = [],
                               environment: BenchEnvironment? = nil) -> [Artifact] {
        let store = ImageStore(root: root.map(Files.absolute) ?? ImageStore.defaultRoot)
        guard let record = try? store.find(reference) else { return [] }
        let layers = record.layers.map(\.diffID)
        let allocated = layers.reduce(Int64(0)) { $0 + (store.layer($1)?.usage.allocated ?? 0) }
        var artifacts = [Artifact(name: "image layers (\(layers.count), in the store)", bytes: UInt64(allocated),
                                  usedBy: backends.filter { $0 != "libvirt" },
                                  note: "stored once, shared by every container of the image and every image with the same layers; each container writes to its own scratch layer, gone with it")]
        if backends.contains("container"), let environment {
            // One run of the program (not a trial) with a report: what it wrote to its own layer.
            let report = environment.workDirectory + "/footprint-run.json"
            let arguments = ["run", reference, "--store", store.root, "--state-root", environment.workDirectory + "/footprint-state",
                             "--report", report] + (command.isEmpty ? [] : ["--"] + command)
            let written: UInt64? = switch (try? Subprocess.run(environment.tandem, arguments, outputFile: "/dev/null")) == 0
                ? Files.readText(report).flatMap({ try? JSON.parse($0) })?["writable_layer_bytes"] : nil {
            case .uint(let bytes)?: bytes
            case .int(let bytes)? where bytes >= 0: UInt64(bytes)
            default: nil
            }
            if let bytes = written {
                artifacts.append(Artifact(name: "the container's own layer after a run", bytes: bytes, usedBy: ["container"],
                                          note: "what the program wrote (the overlay's upper layer, a tmpfs in the container's mount namespace, gone with the container; measured on one run of it)"))
            }
        }
        if backends.contains("libvirt") {
            if let kernel = environment?.kernel, let size = Files.size(kernel) {
                artifacts.append(Artifact(name: "guest kernel (bzImage)", bytes: UInt64(size), usedBy: ["libvirt"], note: "the distribution's kernel the guest boots (its first stage, a few MiB with the modules that reach the disk, is made per run)"))
            }
            var info = stat()
            if let disk = store.vmDisk(for: layers), stat(disk.path, &info) == 0 {
                artifacts.append(Artifact(name: "VM root disk (ext4, from the layers)", bytes: UInt64(info.st_blocks) * 512, usedBy: ["libvirt"],
                                          note: "allocated bytes (apparent size \(info.st_size >> 20) MiB); made once per image and kept in the store; each run writes to its own qcow2 overlay, removed after it"))
            } else {
                let mebibytes = ImageVMRun.diskMebibytes(layers.map(store.layerPath))
                artifacts.append(Artifact(name: "VM root disk (ext4, from the layers)", bytes: UInt64(mebibytes) << 20, usedBy: ["libvirt"],
                                          note: "not made yet: the apparent size the first libvirt run will give it (allocated is about the layers' size)"))
            }
        }
        return artifacts
    }

    /// Apparent size of regular files under `path` (symlinks not followed).
    static func directoryBytes(_ path: String) -> UInt64 {
        guard let handle = opendir(path) else { return 0 }
        defer { closedir(handle) }
        var total: UInt64 = 0
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            var info = stat()
            guard lstat(path + "/" + name, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: total += directoryBytes(path + "/" + name)
            case S_IFREG: total += UInt64(info.st_size)
            default: break
            }
        }
        return total
    }
}
