import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Tandem's tiny microVM: a bare guest on /dev/kvm (hello and compute; not a Linux guest).
struct TinyMicroVM: Sandbox {
    let environment: BenchEnvironment
    var name: String { "tiny-microvm" }
    var info: BackendInfo {
        let usable = access("/dev/kvm", R_OK | W_OK) == 0 && environment.tinyDirectory != nil
        return BackendInfo(name: name, kind: "ours", kindOfSandbox: "microVM (bare guest, no OS)", available: usable,
                           reason: usable ? nil : "needs a usable /dev/kvm and make guests",
                           execution: environment.virtualisation == "hardware" ? "hardware KVM" : "emulated KVM (guest instructions emulated)",
                           description: "tandem vm run --tiny: Tandem's VMM, a flat guest, no kernel")
    }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        switch workload.name {
        case "hello": .success([environment.tandem, "vm", "run", "--tiny", "hello", "--json"])
        case "compute": .success([environment.tandem, "vm", "run", "--tiny", "compute", "--arg", workload.arguments.first ?? "100000", "--json"])
        default: .failure(SandboxSkip(reason: "a tiny guest has no OS to run \(workload.name)"))
        }
    }
    /// The VMM's own ready timestamp (the READY port write), on lab-time's clock.
    func refine(_ sample: inout Sample, output: [String], startNanoseconds: UInt64) {
        guard let report = output.last(where: { $0.hasPrefix("{\"schema\":\"tandem.vm-run/") }),
              let ready = JSONField.number("ready", inObject: "monotonic_ns", of: report), ready > Double(startNanoseconds) else { return }
        sample.readyMs = (ready - Double(startNanoseconds)) / 1e6
    }
}

/// Tandem's Linux microVM: on /dev/kvm with hardware virtualisation; elsewhere inside the nested
/// lab (`tandem lab nested`: L2 on an emulated L1's kvm-amd), timed by lab-time inside L1.
struct LinuxMicroVM: Sandbox {
    let environment: BenchEnvironment
    var name: String { "linux-microvm" }
    var hardware: Bool { environment.virtualisation == "hardware" }
    var labPossible: Bool {
        guard let kernel = environment.kernel, Files.which("qemu-system-x86_64") != nil else { return false }
        let release = kernel.split(separator: "/").last.map { String($0.dropFirst("vmlinuz-".count)) } ?? ""
        return Files.kind("/lib/modules/\(release)/kernel/arch/x86/kvm/kvm-amd.ko") == .regular
    }
    var info: BackendInfo {
        let reason: String? = environment.kernel == nil ? "no kernel (linux-image-cloud-amd64)"
            : !hardware && !labPossible ? "no hardware virtualisation, and the nested lab needs qemu-system-x86 and the kernel's kvm-amd module" : nil
        return BackendInfo(name: name, kind: "ours", kindOfSandbox: "microVM (Linux)", available: reason == nil, reason: reason,
                           execution: hardware ? "hardware KVM" : "nested lab (L2 on kvm-amd inside an L1 under TCG; timed inside L1)",
                           description: hardware ? "tandem vm run: Tandem's VMM booting the cloud kernel + guest image"
                               : "tandem lab nested: the same VMM and guest as L2 in the nested lab, one L1 boot per trial")
    }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        if hardware {
            var line = "quiet"
            if !workload.arguments.isEmpty { line += " tandem.args=" + workload.arguments.joined(separator: ",") }
            return .success([environment.tandem, "vm", "run", "--workload", workload.name, "--cmdline", line])
        }
        var argv = [environment.tandemCLI, "lab", "nested", "--workload", workload.name, "--cmdline", "quiet", "--verbose", "--json"]
        if !workload.arguments.isEmpty { argv += ["--args", workload.arguments.joined(separator: ",")] }
        return .success(argv)
    }
    /// In the lab, the figures are L2's as lab-time measured them inside L1 (L1's own boot is
    /// not part of a microVM's start); the VMM's peak RSS comes from its report.
    func refine(_ sample: inout Sample, output: [String], startNanoseconds: UInt64) {
        guard !hardware, let line = output.last(where: { $0.hasPrefix("{\"schema\":\"tandem.lab/") }),
              let data = line.data(using: .utf8), let lab = try? JSONDecoder().decode(AnyJSON.self, from: data),
              case .object(let top) = lab, case .array(let boots)? = top["boots"], case .object(let boot)? = boots.first else {
            sample.status = sample.status == 0 ? 1 : sample.status
            return
        }
        if case .number(let ready)? = boot["ready_ms"] { sample.readyMs = ready } else { sample.readyMs = nil }
        if case .number(let exit)? = boot["exit_ms"] { sample.totalMs = exit }
        if case .number(let status)? = boot["status"] { sample.status = Int(status) }
        if case .object(let report)? = boot["report"], case .number(let rss)? = report["peak_rss_bytes"] { sample.peakRSSBytes = UInt64(rss) }
    }
}

/// Tandem's container runtime.
struct TandemContainer: Sandbox {
    let environment: BenchEnvironment
    var name: String { "container" }
    var info: BackendInfo {
        let ok = getuid() == 0 && environment.rootfs != nil
        return BackendInfo(name: name, kind: "ours", kindOfSandbox: "container", available: ok,
                           reason: ok ? nil : "needs root and the image rootfs (make image)", execution: "native (host kernel)",
                           description: "tandem ctr run: namespaces, overlay over the image, pivot_root, cgroups")
    }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        .success([environment.tandem, "ctr", "run", "--", "/init", workload.name] + workload.arguments)
    }
}

/// The same guest through libvirt: direct kernel boot (`libvirt`), or booting from an ext4 root
/// disk made from the same image (`libvirt-disk`, machine pc), as a distro guest does.
struct LibvirtGuest: Sandbox {
    let environment: BenchEnvironment
    var disk = false
    var name: String { disk ? "libvirt-disk" : "libvirt" }
    var info: BackendInfo {
        var reason: String?
        if access("/run/libvirt/libvirt-sock", F_OK) != 0 { reason = "the libvirt daemon is not running (scripts/libvirtd.sh up)" }
        if environment.kernel == nil { reason = "no kernel (linux-image-cloud-amd64)" }
        let tcg = environment.virtualisation != "hardware"
        return BackendInfo(name: name, kind: "ours", kindOfSandbox: "full VM (libvirt + QEMU)", available: reason == nil, reason: reason,
                           execution: tcg ? "TCG (QEMU emulates the guest)" : "hardware KVM",
                           description: disk ? "tandem vm run --backend libvirt --disk: ext4 root on virtio-blk, machine pc"
                               : "tandem vm run --backend libvirt: a transient libvirt domain, direct kernel boot, machine microvm")
    }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        var line = "quiet"
        if !workload.arguments.isEmpty { line += " tandem.args=" + workload.arguments.joined(separator: ",") }
        return .success([environment.tandemCLI, "vm", "run", "--backend", "libvirt", "--workload", workload.name, "--cmdline", line,
                         "--json", "--timeout", "300"] + (disk ? ["--disk"] : []))
    }
    /// QEMU is libvirt's child, not the launcher's: add its peak RSS from the report.
    func refine(_ sample: inout Sample, output: [String], startNanoseconds: UInt64) {
        guard let report = output.last(where: { $0.hasPrefix("{\"schema\":\"tandem.vm-run/") }),
              let qemu = JSONField.number("qemu_peak_rss_bytes", of: report) else { return }
        sample.peakRSSBytes = (sample.peakRSSBytes ?? 0) + UInt64(qemu)
    }
}

/// Peer: QEMU's microvm machine run directly, with the equivalent command line.
struct QEMUMicroVM: Sandbox {
    let environment: BenchEnvironment
    var name: String { "qemu-microvm" }
    var info: BackendInfo {
        var reason: String?
        if Files.which("qemu-system-x86_64") == nil { reason = "qemu-system-x86_64 is not installed" }
        if environment.kernel == nil { reason = "no kernel (linux-image-cloud-amd64)" }
        let kvm = environment.virtualisation == "hardware"
        return BackendInfo(name: name, kind: "peer", kindOfSandbox: "microVM (Linux, QEMU)", available: reason == nil, reason: reason,
                           execution: kvm ? "hardware KVM" : "TCG (QEMU emulates the guest)",
                           description: "qemu-system-x86_64 -M microvm, the same kernel and initramfs")
    }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        var line = "tandem.workload=\(workload.name)"
        if !workload.arguments.isEmpty { line += " tandem.args=" + workload.arguments.joined(separator: ",") }
        return .success(QEMUMicroVMCommand.arguments(qemu: Files.which("qemu-system-x86_64")!, kvm: environment.virtualisation == "hardware",
                                       kernel: environment.kernel!, initrd: environment.initramfs, commandLine: line))
    }
}

/// QEMU microvm run directly, without libvirt.
public enum QEMUMicroVMCommand {
    /// QEMU's command line for a microvm guest of `kernel` and `initrd`, its console on stdio
    /// (`tandem vm run --backend qemu` and this peer: one definition). The kernel command line
    /// is the common base (and, under TCG, the clock: PLATFORM.md), then `commandLine`.
    public static func arguments(qemu: String, kvm: Bool, kernel: String, initrd: String?, commandLine: String,
                                 memoryMiB: Int = 256, vcpus: Int = 1) -> [String] {
        var line = GuestCommandLine.base(reboot: "t", pciOff: true) + " quiet"
        if !kvm, let clock = GuestCommandLine.emulatedClock() { line += " " + clock }
        if !commandLine.isEmpty { line += " " + commandLine }
        return [qemu, "-M", "microvm", "-accel", kvm ? "kvm" : "tcg", "-cpu", kvm ? "host" : "qemu64",
                "-m", String(memoryMiB), "-smp", String(vcpus), "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
                "-monitor", "none", "-no-reboot", "-kernel", kernel] + (initrd.map { ["-initrd", $0] } ?? []) + ["-append", line]
    }
}

/// Peers: crun and runc with an OCI bundle over the same rootfs.
struct OCIRuntime: Sandbox {
    let environment: BenchEnvironment
    let runtime: String
    var name: String { runtime }
    var info: BackendInfo {
        var reason: String?
        if Files.which(runtime) == nil { reason = "\(runtime) is not installed" }
        if environment.rootfs == nil { reason = "no image rootfs (make image)" }
        if getuid() != 0 { reason = "needs root" }
        return BackendInfo(name: name, kind: "peer", kindOfSandbox: "container", available: reason == nil, reason: reason,
                           execution: "native (host kernel)", description: "\(runtime) run with an OCI bundle over the image rootfs")
    }
    func bundle(_ workload: Workload) -> String { "\(environment.workDirectory)/\(runtime)-\(workload.name)" }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        let directory = bundle(workload)
        if Files.kind(directory + "/config.json") == .missing {
            mkdir(directory, 0o755)
            let config = OCIConfig.minimal(rootfs: environment.rootfs!, args: ["/init", workload.name] + workload.arguments,
                                           hostname: runtime)
            do { try Files.write(directory + "/config.json", Array(config.utf8)) } catch {
                return .failure(SandboxSkip(reason: "cannot write the bundle: \(error)"))
            }
        }
        return .success([Files.which(runtime)!, "--root", "\(environment.workDirectory)/\(runtime)-state", "run", "--bundle", directory,
                         "tandem-bench-\(getpid())-\(workload.name)-\(trial)"])
    }
}

/// Peer: the workload as a plain host process (tandem-init not as PID 1 runs it directly): the floor.
struct BareProcess: Sandbox {
    let environment: BenchEnvironment
    var name: String { "process" }
    var info: BackendInfo {
        BackendInfo(name: name, kind: "peer", kindOfSandbox: "plain process (no isolation)", available: environment.rootfs != nil,
                    reason: environment.rootfs == nil ? "no image rootfs (make image)" : nil, execution: "native (host kernel)",
                    description: "the image's tandem-init and workload run directly on the host")
    }
    func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        guard let rootfs = environment.rootfs else { return .failure(SandboxSkip(reason: "no rootfs")) }
        // hello is tandem-init's own; other workloads run as the image's program itself (outside
        // a container tandem-init would look for /bin/NAME on the host).
        if workload.name == "hello" { return .success(["\(rootfs)/init", "hello"]) }
        guard Files.kind("\(rootfs)/bin/\(workload.name)") == .regular else { return .failure(SandboxSkip(reason: "no /bin/\(workload.name)")) }
        return .success(["\(rootfs)/bin/\(workload.name)"] + workload.arguments)
    }
}

/// The OCI runtime spec's smallest useful config.json for the peers (namespaces like Tandem's).
/// Their root is the shared image, read-only, so /tmp is a tmpfs (Tandem's containers write to
/// their own overlay layer instead).
public enum OCIConfig {
    /// `networkPath`: join that network namespace instead of making one (the server bench's peers).
    public static func minimal(rootfs: String, args: [String], hostname: String, networkPath: String? = nil) -> String {
        func quote(_ text: String) -> String { JSONText.quote(text) }
        let network = networkPath.map { "{\"type\":\"network\",\"path\":\(quote($0))}" } ?? "{\"type\":\"network\"}"
        return """
        {"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":0,"gid":0},"args":[\(args.map(quote).joined(separator: ","))],
        "env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/","noNewPrivileges":true,
        "capabilities":{"bounding":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],"effective":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"],
        "permitted":["CAP_AUDIT_WRITE","CAP_KILL","CAP_NET_BIND_SERVICE"]}},
        "root":{"path":\(quote(rootfs)),"readonly":true},"hostname":\(quote(hostname)),
        "mounts":[{"destination":"/proc","type":"proc","source":"proc"},
        {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
        {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance","ptmxmode=0666","mode=0620"]},
        {"destination":"/dev/shm","type":"tmpfs","source":"shm","options":["nosuid","noexec","nodev","mode=1777","size=65536k"]},
        {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
        {"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["nosuid","nodev","mode=1777"]}],
        "linux":{"namespaces":[{"type":"pid"},\(network),{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}],
        "maskedPaths":["/proc/kcore","/proc/keys","/sys/firmware"],"readonlyPaths":["/proc/sys","/proc/sysrq-trigger"]}}
        """
    }
}

/// JSON string quoting and the odd field read without a full decoder (launchers' one-line reports).
public enum JSONText {
    public static func quote(_ text: String) -> String { JSON.string(text).serialized() }
}

enum JSONField {
    /// A top-level member of a JSON object, or nil (not JSON, not an object, no such member).
    static func value(_ key: String, of json: String) -> AnyJSON? {
        guard let data = json.data(using: .utf8), let decoded = try? JSONDecoder().decode(AnyJSON.self, from: data),
              case .object(let members) = decoded else { return nil }
        return members[key]
    }

    /// A number field of a one-line JSON report, optionally inside the named object.
    static func number(_ key: String, inObject object: String? = nil, of json: String) -> Double? {
        guard let data = json.data(using: .utf8),
              let decoded = try? JSONDecoder().decode(AnyJSON.self, from: data) else { return nil }
        var value = decoded
        if let object { guard case .object(let members) = value, let inner = members[object] else { return nil }; value = inner }
        guard case .object(let members) = value, case .number(let number)? = members[key] else { return nil }
        return number
    }
}

/// Just enough of JSON to read launchers' reports.
enum AnyJSON: Decodable {
    case number(Double), string(String), bool(Bool), null, array([AnyJSON]), object([String: AnyJSON])
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Double.self) { self = .number(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([AnyJSON].self) { self = .array(value) }
        else { self = .object(try container.decode([String: AnyJSON].self)) }
    }
}

/// The sandbox for a backend name (the names `tandem bench --backends` takes).
public enum Backends {
    public static func make(_ name: String, _ environment: BenchEnvironment) -> any Sandbox {
        switch name {
        case "tiny-microvm": TinyMicroVM(environment: environment)
        case "linux-microvm": LinuxMicroVM(environment: environment)
        case "container": TandemContainer(environment: environment)
        case "libvirt": LibvirtGuest(environment: environment)
        case "libvirt-disk": LibvirtGuest(environment: environment, disk: true)
        case "qemu-microvm": QEMUMicroVM(environment: environment)
        case "crun", "runc": OCIRuntime(environment: environment, runtime: name)
        default: BareProcess(environment: environment)
        }
    }
}


/// `tandem bench --image IMAGE`: the user's image in each way `tandem run --as` runs it
/// (container, crun, runc, libvirt), its program the workload; ready is the program's own line
/// (`--ready TEXT`, lab-time's marker), as the user's app says it is ready in every backend alike.
public struct ImageSandbox: Sandbox {
    public static let backends = ["container", "crun", "runc", "libvirt", "microvm"]
    let environment: BenchEnvironment
    let backend: String
    let image: String
    let store: String?
    public init(environment: BenchEnvironment, backend: String, image: String, store: String?) {
        self.environment = environment
        self.backend = backend
        self.image = image
        self.store = store
    }
    public var name: String { backend }
    public var info: BackendInfo {
        var reason: String?
        if getuid() != 0 { reason = "needs root" }
        if backend == "crun" || backend == "runc", Files.which(backend) == nil { reason = "\(backend) is not installed" }
        if backend == "libvirt", Files.kind("/run/libvirt/libvirt-sock") == .missing { reason = "no libvirt daemon (scripts/libvirtd.sh up)" }
        if backend == "libvirt", environment.kernel == nil { reason = "no guest kernel (linux-image-cloud-amd64)" }
        if backend == "microvm" {
            // Tandem's VMM runs guest code at hardware speed only; an emulated /dev/kvm would take
            // minutes per Linux boot (the nested lab runs it there: `tandem lab nested --image`).
            if environment.virtualisation != "hardware" { reason = "Tandem's microVM needs hardware virtualisation (this host's /dev/kvm is \(environment.virtualisation)); here it runs inside the nested lab: tandem lab nested --image IMAGE --runs N" }
            if environment.kernel == nil { reason = "no guest kernel (linux-image-cloud-amd64)" }
        }
        let vm = backend == "libvirt" || backend == "microvm"
        let execution = !vm ? "native (host kernel)" : environment.virtualisation == "hardware" ? "hardware KVM"
            : backend == "microvm" ? "emulated KVM (not run)" : "TCG (QEMU emulates the guest)"
        let description = switch backend {
        case "container": "tandem run --as container: Tandem's runtime, an overlay of the image's layers"
        case "libvirt": "tandem run --as libvirt: the image as the guest's ext4 root disk (made once per image, a qcow2 overlay per run), tandem-init as PID 1"
        case "microvm": "tandem run --as microvm: Tandem's own VMM, the image as the guest's initramfs, tandem-init as PID 1"
        default: "tandem run --as \(backend): \(backend) on a bundle made from the image (overlay of its layers)"
        }
        return BackendInfo(name: name, kind: backend == "crun" || backend == "runc" ? "peer" : "ours",
                           kindOfSandbox: backend == "microvm" ? "microVM (Linux, Tandem's VMM)" : vm ? "VM" : "container",
                           available: reason == nil, reason: reason, execution: execution, description: description)
    }
    /// How `tandem run --as libvirt` says what QEMU's peak resident set was (its last line on
    /// stderr; the stopwatch keeps lines that start so).
    public static let qemuPeakLine = "tandem: the guest's QEMU peaked at"

    /// QEMU is libvirt's child, not the launcher's: add the peak RSS `tandem run --as libvirt` says it had.
    public func refine(_ sample: inout Sample, output: [String], startNanoseconds: UInt64) {
        guard backend == "libvirt", let line = output.last(where: { $0.hasPrefix(Self.qemuPeakLine) }),
              let bytes = line.split(separator: "=").last.flatMap({ UInt64($0.prefix { $0.isNumber }) }) else { return }
        sample.peakRSSBytes = (sample.peakRSSBytes ?? 0) + bytes
    }

    public func command(for workload: Workload, trial: Int) -> Result<[String], SandboxSkip> {
        .success([environment.tandem, "run", image, "--as", backend] + (store.map { ["--store", $0] } ?? []) + (workload.arguments.isEmpty ? [] : ["--"] + workload.arguments))
    }
}
