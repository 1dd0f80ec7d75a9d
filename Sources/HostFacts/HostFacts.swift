import HostOS
import KVM
#if canImport(Glibc)
import Glibc
#endif

/// How guest code runs on this host — stamped on every figure Tandem shows, because the same
/// benchmark means different things under each.
public enum VirtualisationMode: String, Sendable {
    /// VT-x/AMD-V in the CPU (vmx or svm flag) and kvm_intel/kvm_amd loaded: guests run natively.
    case hardware
    /// /dev/kvm works but the CPU has no vmx/svm (e.g. the kvm_pvm module): KVM emulates guest
    /// instructions, roughly 1 µs each. Correct, but nowhere near hardware speed.
    case emulated
    /// No usable /dev/kvm: only QEMU's TCG software emulation can run a VM.
    case none

    public var explanation: String {
        switch self {
        case .hardware: "hardware KVM: guest code runs natively on VT-x/AMD-V"
        case .emulated: "emulated KVM: /dev/kvm works without VT-x/AMD-V; guest code is emulated (~1 µs per instruction), not hardware speed"
        case .none: "no KVM: virtual machines run only under QEMU TCG (software emulation)"
        }
    }
}

/// The host's cgroup layout: a unified v2 tree, legacy v1 controllers, or both at once.
public enum CgroupLayout: String, Sendable {
    case v1, v2, hybrid, none
}

/// What `tandem host` reports about /dev/kvm.
public struct KVMFacts: Sendable {
    public var path: String
    public var present: Bool
    public var usable: Bool
    public var apiVersion: Int32?
    /// Why it is not usable, in words a user can act on.
    public var problem: String?
    /// Loaded KVM modules (kvm, kvm_intel, kvm_amd, kvm_pvm).
    public var modules: [String]
}

/// An external program Tandem can use as a backend or a peer.
public struct ToolFacts: Sendable {
    public var name: String
    public var path: String?
    public var version: String?
}

/// Facts about this host that every result carries (`tandem host`).
public struct HostFacts: Sendable {
    public var hostname: String
    public var cpuModel: String
    public var cpuCount: Int
    public var memoryMiB: Int?
    public var kernelRelease: String
    public var cpuHasVMX: Bool
    public var cpuHasSVM: Bool
    /// The CPU reports a hypervisor underneath (this host is itself a VM).
    public var underHypervisor: Bool
    public var kvm: KVMFacts
    public var virtualisation: VirtualisationMode
    public var cgroupLayout: CgroupLayout
    public var cgroupV2Controllers: [String]
    public var tools: [ToolFacts]

    /// Reads the facts. `toolVersions` runs each found tool's `--version` (slower: tens of ms).
    public static func probe(kvmPath: String = KVMSystem.defaultPath, toolVersions: Bool = true) -> HostFacts {
        let cpuinfo = Files.readText("/proc/cpuinfo") ?? ""
        var model = "unknown"
        var flags: Set<Substring> = []
        var processors = 0
        for line in cpuinfo.split(separator: "\n") {
            if line.hasPrefix("processor") { processors += 1 }
            if model == "unknown", line.hasPrefix("model name"), let colon = line.firstIndex(of: ":") {
                model = line[line.index(after: colon)...].trimmingSpaces()
            }
            if flags.isEmpty, line.hasPrefix("flags"), let colon = line.firstIndex(of: ":") {
                flags = Set(line[line.index(after: colon)...].split(separator: " "))
            }
        }
        var name = utsname()
        uname(&name)
        let release = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let nodename = withUnsafeBytes(of: &name.nodename) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }

        let kvm = probeKVM(path: kvmPath)
        let hasVMX = flags.contains("vmx"), hasSVM = flags.contains("svm")
        let mode: VirtualisationMode
        if !kvm.present {
            mode = .none
        } else if (hasVMX || hasSVM) && (kvm.modules.contains("kvm_intel") || kvm.modules.contains("kvm_amd")) {
            mode = .hardware
        } else {
            mode = .emulated
        }
        let (layout, controllers) = probeCgroups()
        return HostFacts(
            hostname: nodename, cpuModel: model, cpuCount: max(processors, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))),
            memoryMiB: HostMemory.totalMiB(), kernelRelease: release, cpuHasVMX: hasVMX, cpuHasSVM: hasSVM,
            underHypervisor: flags.contains("hypervisor"), kvm: kvm, virtualisation: mode,
            cgroupLayout: layout, cgroupV2Controllers: controllers,
            tools: probeTools(versions: toolVersions))
    }

    public static func probeKVM(path: String) -> KVMFacts {
        let modules = ["kvm", "kvm_intel", "kvm_amd", "kvm_pvm"].filter { Files.kind("/sys/module/\($0)") == .directory }
        var facts = KVMFacts(path: path, present: Files.kind(path) != .missing, usable: false, apiVersion: nil,
                             problem: nil, modules: modules)
        do {
            let system = try KVMSystem(path: path)
            facts.usable = true
            facts.apiVersion = system.apiVersion
        } catch {
            facts.problem = error.description
            if case .unexpectedAPIVersion(_, let version) = error { facts.apiVersion = version }
        }
        return facts
    }

    /// cgroup2's and tmpfs's statfs magic numbers (linux/magic.h).
    static let cgroup2Magic = 0x6367_7270
    static let tmpfsMagic = 0x0102_1994

    static func probeCgroups(root: String = "/sys/fs/cgroup") -> (CgroupLayout, [String]) {
        let magic = Files.filesystemMagic
        func controllers(_ path: String) -> [String] {
            (Files.readText(path + "/cgroup.controllers") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        }
        guard let rootMagic = magic(root) else { return (.none, []) }
        if rootMagic == cgroup2Magic { return (.v2, controllers(root)) }
        if magic(root + "/unified") == cgroup2Magic { return (.hybrid, controllers(root + "/unified")) }
        return rootMagic == tmpfsMagic ? (.v1, []) : (.none, [])
    }

    /// The programs Tandem drives as backends and peers.
    public static let toolNames = ["qemu-system-x86_64", "libvirtd", "virsh", "crun", "runc"]

    static func probeTools(versions: Bool) -> [ToolFacts] {
        toolNames.map { name in
            let path = Files.which(name)
            var version: String?
            if versions, let path, let result = try? Subprocess.run(path, ["--version"]), result.status == 0 {
                version = result.output.split(separator: "\n").first.map { $0.trimmingSpaces() }
            }
            return ToolFacts(name: name, path: path, version: version)
        }
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

extension HostFacts {
    /// Just the virtualisation mode (cheap: no tool versions), for stamping a single result.
    public static func probeKVMMode(kvmPath: String = KVMSystem.defaultPath) -> VirtualisationMode {
        // Only what the answer needs (`tandem vm run --json` asks after every run, between the
        // guest's end and the status): the node, the two hardware modules, and /proc/cpuinfo only
        // when one of them is loaded — not probeKVM's open and KVM_GET_API_VERSION.
        guard Files.kind(kvmPath) != .missing else { return .none }
        guard ["kvm_intel", "kvm_amd"].contains(where: { Files.kind("/sys/module/" + $0) == .directory }) else { return .emulated }
        let cpuinfo = ProcFields(path: "/proc/cpuinfo")
        return cpuinfo.hasWord("flags", "vmx") || cpuinfo.hasWord("flags", "svm") ? .hardware : .emulated
    }
}
