import Bench
import GuestImages
import HostOS
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// Why the lab cannot run, naming what is missing and how to get it.
public struct LabError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What a lab run boots: the L2 guest and how the lab compares VMMs.
public struct LabOptions: Sendable {
    /// The workload tandem-init runs in L2, and its arguments (comma-separated, `tandem.args=`).
    public var workload = "hello"
    public var arguments: String?
    /// Extra L2 kernel command line (both VMMs get the same one).
    public var commandLine = ""
    public var vcpus = 1
    public var memoryMiB = 256
    /// Boots per VMM; runs are interleaved (tandem, qemu, tandem, qemu, ...).
    public var runs = 1
    /// Also boot the same L2 with `qemu-system-x86_64 -M microvm -enable-kvm` inside L1.
    public var compareQEMU = false
    /// Per-L2-boot limit, and the whole lab's limit.
    public var bootTimeoutSeconds = 120.0
    public var labTimeoutSeconds = 1800.0
    /// L1 is stopped when its console says nothing for this long (0: never): a wedged L1 (nested
    /// SVM under TCG stops now and then under load) then costs this, not the whole lab's limit.
    public var silenceSeconds = 0.0
    /// The L2 (and L1) kernel; default: the newest /boot/vmlinuz-*-cloud-amd64.
    public var kernel: String?
    /// L2's kernel when it differs from L1's; default: Tandem's microVM kernel where `make kernel`
    /// built it and `kernel` was not named, else L1's.
    public var l2Kernel: String?
    /// L2's initramfs instead of the guest image (a user's image, `tandem lab nested --image`);
    /// with an empty `workload`, no tandem.workload= is given: the initramfs says what runs.
    public var initramfs: String?
    /// What the report calls L2's initramfs.
    public var l2Description = "Tandem's guest image"
    /// Raw disk images L2 gets, in order, as `--drive PATH[,ro]` (virtio-blk on Tandem's VMM, a
    /// virtio-blk-device with the same serial, tandem-N, on QEMU microvm): carried into L1 as
    /// /lab/driveN.img. A root disk (`--root-disk`) is the first.
    public var drives: [String] = []
    /// The first drive is L2's root disk: Tandem's VMM gets it as `--root-disk`, QEMU as its
    /// first virtio-blk-device with `tandem.root=/dev/vda` on the command line.
    public var rootDisk = false
    /// L2 gets a network interface on a tap in L1 (Tandem's VMM: `--net tap`, tandem0; QEMU: a
    /// virtio-net-device on a tap with the same addresses): L1 is 172.30.0.1, L2 172.30.0.2. Around
    /// each boot L1 runs netio's peer: it takes what L2 sends to port 5001 (and prints its sha256
    /// as `LAB-NET`) and sends the workloads' pattern to L2's port 5002 until L2 closes.
    public var net = false
    /// L2 gets a vsock device, CID 3 (Tandem's VMM: `--vsock` on a Unix socket in L1, Firecracker's
    /// model; QEMU: a vhost-vsock-device, L1's own AF_VSOCK). Around each boot L1 runs vsockio's
    /// peer: it takes what L2 sends to host port 5001 and prints its sha256, and connects to L2's
    /// port 5002 (through the socket's `CONNECT 5002`, or AF_VSOCK), sending the workloads' pattern
    /// and keeping what L2 echoes (`LAB-VSOCK`).
    public var vsock = false
    /// The server mode (`--load SECONDS`, with `net` and the `http` or `redis` workload): around
    /// each boot L1 polls L2's server until it answers (`lab-time --first-response`: spawn → first
    /// response, the cold start), loads it — wrk for this long (`loadConnections` connections,
    /// `loadThreads` threads, the bench's settings), or redis-benchmark's GET test with
    /// `labRedisRequestsPerSecond` × this many requests — then stops the VMM with SIGTERM (143).
    /// The client runs in L1, beside the VMM: L1 gets one more emulated CPU for it.
    public var loadSeconds: Int?
    public static let loadConnections = 16, loadThreads = 2
    /// redis-benchmark has no duration: the lab sends this many GETs per second of `loadSeconds`
    /// (the host's bench sends 50,000; under L1's emulation that would take minutes).
    public static let labRedisRequestsPerSecond = 2000
    /// The server workload of the server mode.
    public var server: ServerWorkload? { ServerWorkload(rawValue: workload) }
    /// The port L2's server listens on in the server mode (the workload's argument).
    public var serverPort: Int { arguments.flatMap { Int($0) } ?? Int(server?.port ?? 80) }
    /// Snapshot-then-restore (`--snapshot`): after each cold boot, L1 boots L2 again with a control
    /// socket, snapshots it once its guest signals ready, stops it, and restores the snapshot
    /// (timed as `tandem-restore`); the restored guest must finish its workload with the cold
    /// boot's result line and status. With `vsock` the restore resets L2's vsock connections
    /// (Firecracker's model) and vsockio's transfers start again on new ones.
    public var snapshot = false
    /// Where L1 keeps the snapshot (tmpfs: L1's RAM) and the VM's control socket.
    public static let snapshotDirectory = "/run/lab-snapshot", controlSocket = "/run/lab-vm.sock"

    /// Where L2's vsock socket is in L1.
    public static let vsockPath = "/tmp/lab.vsock"
    /// The addresses the lab's network uses (Tandem's first tap, tandem0).
    public static let l1Address = "172.30.0.1", l2Address = "172.30.0.2"
    public init() {}

    /// Takes `tandem vm run` options for L2 (`tandem lab nested -- [vm run options]`): each
    /// becomes the lab's own — files named are carried into L1, `--net tap` makes the lab's tap in
    /// L1, `--vsock` the lab's socket there — so QEMU gets the same devices with --compare-qemu.
    /// An option with no meaning for a Linux L2 is refused, named.
    public mutating func apply(_ vm: VMRunOptions) throws(LabError) {
        if vm.tiny != nil { throw LabError("-- --tiny: the lab boots Linux as L2 (tiny guests run with `tandem vm run --tiny` on any host)") }
        if vm.mode != nil || vm.arg != nil { throw LabError("-- --mode/--arg: they are for tiny guests; the lab boots Linux as L2") }
        if vm.kvmDevice != "/dev/kvm" { throw LabError("-- --kvm-device: L2 runs on L1's /dev/kvm") }
        if vm.nets.count > 1 || vm.nets.contains(where: { $0 != "tap" }) {
            throw LabError("-- --net \(vm.nets.joined(separator: " ")): the lab gives L2 one interface, --net tap (L1 172.30.0.1, L2 172.30.0.2)")
        }
        if vm.rootDisk != nil && rootDisk { throw LabError("-- --root-disk PATH and the lab's --root-disk: one root disk") }
        if let memory = vm.memory { memoryMiB = memory }
        if vm.vcpus != 1 { vcpus = vm.vcpus }
        if let kernel = vm.kernel { l2Kernel = kernel }
        if let initrd = vm.initrd { initramfs = initrd }
        if let workload = vm.workload { self.workload = workload }
        if let extra = vm.cmdline { commandLine += (commandLine.isEmpty ? "" : " ") + extra }
        if vm.timeout > 0 { bootTimeoutSeconds = vm.timeout }
        drives += vm.drives
        if let root = vm.rootDisk {
            drives.insert(root, at: 0)
            rootDisk = true
        }
        if !vm.nets.isEmpty { net = true }
        if vm.vsock != nil { vsock = true }
    }

    /// A `--drive` value's file and whether it is read-only (`PATH` or `PATH,ro`).
    public static func drivePath(_ drive: String) -> String { driveIsReadOnly(drive) ? String(drive.dropLast(3)) : drive }
    public static func driveIsReadOnly(_ drive: String) -> Bool { drive.hasSuffix(",ro") }
}

/// Everything the L1 image is made of, found on this host.
struct LabInputs {
    var kernel: String
    /// What L2 boots (both VMMs).
    var l2Kernel: String
    var release: String
    /// kvm-amd and its dependencies, in load order (modules.dep).
    var modules: [String]
    /// The `tandem` launcher that runs `vm run` in L1 (beside tandem-cli).
    var tandem: String
    /// guest-images/build/lab/lab-time, the stopwatch.
    var labTime: String
    /// guest-images/build/bin: tandem-init, busybox and workloads also make L1's root.
    var programs: String
    /// The L2 guest image (`tandem image build`).
    var image: String
    var qemu: String?
    /// The server mode's load generator: Debian's wrk (http) or redis-benchmark (redis).
    var loadTool: String?

    static let qemuDataFiles = ["bios-microvm.bin", "pvh.bin", "linuxboot_dma.bin", "linuxboot.bin"]

    static func discover(_ options: LabOptions) throws(LabError) -> LabInputs {
        guard let kernel = options.kernel ?? LinuxDefaults.kernel() else {
            throw LabError("no kernel: install Debian's linux-image-cloud-amd64 (make deps) or pass --kernel PATH")
        }
        guard Files.kind(kernel) == .regular else { throw LabError("kernel \(kernel) does not exist") }
        let base = kernel.split(separator: "/").last.map(String.init) ?? kernel
        guard base.hasPrefix("vmlinuz-") else { throw LabError("kernel \(kernel): the lab needs a /boot/vmlinuz-RELEASE whose modules are in /lib/modules/RELEASE") }
        let release = String(base.dropFirst("vmlinuz-".count))
        // kvm-amd and what it needs, from the kernel's own modules.dep (Debian's standard kernel
        // adds ccp to the cloud kernel's irqbypass and kvm).
        let modulesDirectory = "/lib/modules/\(release)"
        let modules: [String]
        // QEMU's vsock is vhost's: L1 needs vhost_vsock (and vsock) for it.
        let wanted = ["kvm_amd"] + (options.net ? ["tun"] : []) + (options.vsock && options.compareQEMU ? ["vhost_vsock"] : [])
        do { modules = try KernelModules.loadOrder(wanted, modulesDirectory: modulesDirectory).map { modulesDirectory + "/" + $0 } } catch {
            throw LabError("\(error.description) (the lab loads kvm-amd in L1 from the kernel's own modules)")
        }
        for module in modules where Files.kind(module) != .regular {
            throw LabError("missing kernel module \(module) (the lab loads kvm-amd in L1 from the kernel's own modules)")
        }
        guard Files.which("qemu-system-x86_64") != nil else {
            throw LabError("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86): it runs L1")
        }
        guard let here = Files.currentExecutable().map(Files.directory(of:)) else { throw LabError("cannot find my own executable") }
        let tandem = here + "/tandem"
        guard Files.kind(tandem) == .regular else { throw LabError("\(tandem) is missing: build Tandem (make build)") }
        guard let programs = TinyGuests.buildDirectory(named: "bin"),
              let labDirectory = TinyGuests.buildDirectory(named: "lab") else {
            throw LabError("guest programs not found: run `make guests` in the Tandem checkout")
        }
        let labTime = labDirectory + "/lab-time"
        guard Files.kind(labTime) == .regular else { throw LabError("\(labTime) is missing: run `make guests`") }
        guard let image = options.initramfs ?? LinuxDefaults.initramfs() else {
            throw LabError("no guest image: run `make image` (tandem image build)")
        }
        guard Files.kind(image) == .regular else { throw LabError("L2's initramfs \(image) does not exist") }
        var qemu: String?
        if options.compareQEMU {
            qemu = Files.which("qemu-system-x86_64")
            for file in qemuDataFiles where Files.kind("/usr/share/qemu/\(file)") != .regular {
                throw LabError("--compare-qemu needs /usr/share/qemu/\(file) (qemu-system-data)")
            }
        }
        let l2Kernel = options.l2Kernel ?? (options.kernel == nil ? LinuxDefaults.microVMKernel() : nil) ?? kernel
        guard Files.kind(l2Kernel) == .regular else { throw LabError("L2's kernel \(l2Kernel) does not exist") }
        var loadTool: String?
        if options.loadSeconds != nil, let server = options.server {
            loadTool = Files.which(server.tool)
            guard loadTool != nil else {
                throw LabError("--load: \(server.tool) is not installed (Debian's package \(server == .http ? "wrk" : "redis-tools"); make deps installs it): it loads L2's server from L1")
            }
            // The image's rootfs beside its initramfs (`tandem image build` writes both) says
            // whether it carries the server.
            let rootfs = Files.directory(of: image) + "/rootfs"
            if Files.kind(rootfs) == .directory, Files.kind(rootfs + server.program) == .missing {
                throw LabError("--load: L2's image \(image) has no \(server.program)\(server == .redis ? " (tandem image build --with-redis)" : "")")
            }
        }
        return LabInputs(kernel: kernel, l2Kernel: l2Kernel, release: release, modules: modules, tandem: tandem, labTime: labTime,
                         programs: programs, image: image, qemu: qemu, loadTool: loadTool)
    }

    /// The shared libraries `binary` loads, with the dynamic loader, as absolute paths (`ldd`);
    /// none for a static binary.
    static func sharedLibraries(of binary: String) throws(LabError) -> [String] {
        let result: Subprocess.Result
        do { result = try Subprocess.run("/usr/bin/ldd", [binary]) } catch { throw LabError("ldd \(binary): \(error)") }
        if result.output.contains("not a dynamic executable") || result.output.contains("statically linked") { return [] }
        guard result.status == 0 else { throw LabError("ldd \(binary) failed: \(result.output)") }
        var libraries: [String] = []
        for line in result.output.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if let arrow = words.firstIndex(of: "=>"), arrow + 1 < words.count, words[arrow + 1].hasPrefix("/") {
                libraries.append(String(words[arrow + 1]))
            } else if let first = words.first, first.hasPrefix("/") {
                libraries.append(String(first))
            } else if line.contains("not found") {
                throw LabError("ldd \(binary): \(line.trimmingCharacters(in: " \t"))")
            }
        }
        return libraries
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var text = self
        while let first = text.first, set.contains(first) { text.removeFirst() }
        while let last = text.last, set.contains(last) { text.removeLast() }
        return String(text)
    }
}
