import ArgumentParser
import Containers
import GuestImages
import HostOS
import NestedLab
import TandemLaunch
#if canImport(Glibc)
import Glibc
#endif

/// `tandem lab nested`: boot Linux in Tandem's VMM as L2 inside an emulated L1 that has SVM.
struct LabNestedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nested",
        abstract: "Boot a Linux guest with Tandem's VMM inside a nested lab (for hosts without VT-x/AMD-V).",
        discussion: """
        L1 is the cloud kernel under QEMU in pure software mode with an emulated AMD EPYC (which has \
        SVM); L1 loads kvm-amd and runs `tandem vm run` there, booting the same kernel and Tandem's \
        guest image as L2. With --compare-qemu, L1 also boots L2 with `qemu-system-x86_64 -M microvm \
        -enable-kvm`, interleaved with Tandem's boots; every boot is timed the same way, from spawn to \
        the ready marker and to exit. L1 itself is emulated, so these are figures to compare VMMs, not \
        hardware speed. Exit status: 0 when every boot ran and Tandem's boots ended with status 0 \
        (with --load: with the SIGTERM that stops them, and every boot was loaded).
        """
    )

    @Option(name: .long, help: ArgumentHelp("The workload tandem-init runs in L2.", valueName: "name"))
    var workload = "hello"

    @Option(name: .long, help: ArgumentHelp("Its arguments, comma-separated (tandem.args=).", valueName: "a,b"))
    var args: String?

    @Option(name: .long, help: ArgumentHelp("Appended to L2's kernel command line (both VMMs).", valueName: "text"))
    var cmdline = ""

    @Option(name: .long, help: "L2's vCPUs (L1 gets as many emulated CPUs).")
    var vcpus = 1

    @Option(name: .long, help: ArgumentHelp("L2's RAM.", valueName: "MiB"))
    var memory = 256

    @Option(name: .long, help: "Boots per VMM, interleaved.")
    var runs = 1

    @Flag(name: .long, help: "Also boot L2 with QEMU's microvm machine and compare.")
    var compareQemu = false

    @Option(name: .long, help: ArgumentHelp("L1 and L2 kernel (default: the newest /boot/vmlinuz-*-cloud-amd64 for L1, and for L2 too unless `make kernel` built Tandem's microVM kernel).", valueName: "path"))
    var kernel: String?

    @Option(name: .long, help: ArgumentHelp("L2's kernel, when it is not L1's (e.g. the distro's, where the microVM kernel is built).", valueName: "path"))
    var l2Kernel: String?

    @Option(name: .long, help: ArgumentHelp("Stop the whole lab after this long.", valueName: "seconds"))
    var timeout: Double = 1800

    @Option(name: .long, help: ArgumentHelp("Boot a user's image from the store as L2 (its initramfs, as tandem run --as microvm makes it) instead of the guest image's workload.", valueName: "image"))
    var image: String?
    @Option(name: .long, help: ArgumentHelp("With --image: the image store (default /var/lib/tandem).", valueName: "dir"))
    var store: String?
    @Argument(parsing: .postTerminator, help: ArgumentHelp("After --: `tandem vm run` options for L2 (--drive, --root-disk, --net tap, --vsock, --memory, --vcpus, --kernel, --initrd, --cmdline, --workload, --timeout): files are carried into L1, the tap and the vsock socket are made there, and --compare-qemu gives QEMU the same devices. With --image: the command instead (else the image's Entrypoint and Cmd).", valueName: "vm run options | command"))
    var command: [String] = []
    @Flag(name: .long, help: "L2 boots from a root disk on virtio-blk (--drive in Tandem's VMM): the guest image (or --image's, made once and kept in the store) as ext4, a first stage that loads virtio_mmio, virtio_blk and ext4 and switches root, as the libvirt disk guest does.")
    var rootDisk = false
    @Option(name: .long, help: ArgumentHelp("A raw disk image L2 gets as virtio-blk (repeatable; ,ro: read-only), in both VMMs with the serial tandem-N (the root disk of --root-disk is drive 0). L1 carries a copy: L2's writes never reach the file here; the lab prints each copy's sha256 at the end.", valueName: "path[,ro]"))
    var drive: [String] = []
    @Flag(name: .long, help: "L2 gets a network interface on a tap in L1 (Tandem: --net tap; QEMU: a tap with the same addresses), L1 172.30.0.1, L2 172.30.0.2; around each boot L1 takes what L2 sends to its port 5001 (sha256 reported) and sends the workloads' pattern to L2's port 5002: `--workload netio --args both,172.30.0.1,5001,32` measures TCP both ways.")
    var net = false
    @Flag(name: .long, help: "L2 gets a vsock device, CID 3 (Tandem's VMM: --vsock on a Unix socket in L1, Firecracker's model; QEMU: vhost-vsock-device, L1's own AF_VSOCK); around each boot L1 takes what L2 sends to host port 5001 and connects to L2's port 5002, sending the workloads' pattern and keeping L2's echo (both sha256 reported): `--workload vsockio --args both,5001,32`.")
    var vsock = false
    @Option(name: .long, help: ArgumentHelp("The server mode, with --net and --workload http or redis: L1 polls L2's server until it answers (spawn → first response, the cold start), loads it — wrk (16 connections, 2 threads) for this long, or redis-benchmark's GET test with 2000 requests per second given (redis needs an image built --with-redis: -- --initrd PATH) — then stops the VMM with SIGTERM (each boot's status is then 143); L1 gets one more CPU for the client.", valueName: "seconds"))
    var load: Int?
    @Flag(name: .long, help: "Snapshot-then-restore: after each cold boot, boot L2 again with a control socket, snapshot it once its guest signals ready, stop it, and restore the snapshot (timed as tandem-restore): the restore must finish the workload with the cold boot's result and status (docs/snapshots.md). With disks, --net and --vsock (the restore resets vsock connections; vsockio starts its transfer again on a new one), not with --load.")
    var snapshot = false

    @Flag(name: .long, help: "Stream L1's whole console (L2's console included).")
    var verbose = false

    @Flag(name: .long, help: "Print a JSON report (schema tandem.lab/1) on stdout; progress goes to stderr.")
    var json = false

    /// One line of L1's console: all of it with --verbose, else what tells the user how far it got.
    func progress(_ line: String) {
        let say: (String) -> Void = json ? { StandardError.line($0) } : { StandardOutput.write($0 + "\n") }
        if verbose { say(line); return }
        if line.hasPrefix("LAB-L1-READY ") { say("lab: L1 up after \(line.dropFirst(13)) s (its own clock); kvm-amd loaded") }
        if line.hasPrefix("LAB-ERROR ") { say("lab: " + String(line.dropFirst(10))) }
        if line.hasPrefix("LAB-TIME "), let boot = NestedLab.parseTime(line) { say("lab: \(boot.vmm): " + LabSummary.describe(boot)) }
    }

    func run() throws {
        var options = LabOptions()
        options.workload = workload
        options.arguments = args
        options.commandLine = cmdline
        options.vcpus = vcpus
        options.memoryMiB = memory
        options.runs = runs
        options.compareQEMU = compareQemu
        options.kernel = kernel
        options.l2Kernel = l2Kernel
        options.labTimeoutSeconds = timeout
        options.drives = drive
        options.net = net
        options.vsock = vsock
        options.loadSeconds = load
        options.snapshot = snapshot
        // In the server mode L1 says nothing while a load runs; past that it is stuck.
        if let load { options.silenceSeconds = Double(load) + 90 }
        if image == nil && !command.isEmpty {
            let vm: VMRunCommand
            do { vm = try VMRunCommand.parse(command) } catch {
                throw fail("lab nested -- \(command.joined(separator: " ")): \(VMRunCommand.message(for: error))")
            }
            guard !(rootDisk && vm.rootDisk != nil) else { throw fail("lab nested --root-disk and -- --root-disk PATH: one root disk") }
            guard vm.backend == "microvm", !vm.disk, !vm.keep, vm.machine == nil else {
                throw fail("lab nested -- : --backend, --disk, --machine and --keep are libvirt's; L2 runs on Tandem's VMM (and QEMU microvm with --compare-qemu)")
            }
            do { try options.apply(vm.options) } catch { throw fail("lab nested \(error.description)") }
        }
        // A user's image: its initramfs made here (in a mount namespace of our own), L2 runs what it says.
        var scratch: String?
        defer { if let scratch { Files.removeTree(scratch) } }
        if let image {
            guard args == nil, workload == "hello" else { throw fail("--workload and --args are for the guest image, not --image") }
            do {
                try PeerRun.enterPrivateMountNamespace()
                var run = CtrRunOptions()
                run.imageReference = image
                run.store = store
                run.command = command
                let spec: ContainerSpec
                switch CtrRunner.makeSpec(run) {
                case .success(let made): spec = made
                case .failure(let error): throw error
                }
                guard case .layers(let layers) = spec.root, let program = spec.program else { throw ContainerError("an image from the store only") }
                let directory = try ImageMicroVMRun.temporaryDirectory()
                scratch = directory
                options.workload = ""
                if rootDisk {
                    // The image's root disk from the store (made once, as for libvirt) on --drive:
                    // L1 carries a copy in its RAM, so L2's writes never reach the store's disk.
                    guard let kernelPath = kernel ?? LinuxDefaults.kernel() else { throw ContainerError("no kernel (linux-image-cloud-amd64)") }
                    guard let programs = TinyGuests.buildDirectory(named: "bin"), Files.kind(programs + "/tandem-init") == .regular else {
                        throw ContainerError("tandem-init is not built (make guests)")
                    }
                    let base = try ImageVMRun.baseDisk(options: run, layers: layers, tandemInit: programs + "/tandem-init", directory: directory)
                    let runEntries = [ImageEntry(path: ".tandem", kind: .directory, permissions: 0o755),
                                      ImageEntry(path: ".tandem/run", kind: .file(try ImageVMRun.runFile(spec: spec, program: program)), permissions: 0o644)]
                    do { options.initramfs = try DiskGuest.firstStage(kernel: kernelPath, directory: directory, adding: runEntries) } catch {
                        throw ContainerError("\(error)")
                    }
                    options.drives = [base.path] + options.drives
                    options.rootDisk = true
                    options.l2Description = "image \(spec.imageName ?? image) from its root disk on virtio-blk (\((Files.size(base.path) ?? 0) >> 20) MiB ext4)"
                } else {
                    let (initramfs, size) = try ImageMicroVMRun.writeInitramfs(spec: spec, program: program, layers: layers, directory: directory)
                    options.initramfs = initramfs
                    options.commandLine = ImageMicroVMRun.commandLine + (cmdline.isEmpty ? "" : " " + cmdline)
                    options.memoryMiB = max(memory, ImageMicroVMRun.memoryMiB(initramfsBytes: size))
                    options.l2Description = "image \(spec.imageName ?? image) as its initramfs (\(size >> 20) MiB, \(options.memoryMiB) MiB of RAM)"
                }
                (json ? StandardError.line : { StandardOutput.write($0 + "\n") })("lab: L2 = " + options.l2Description)
            } catch { throw fail("lab nested --image \(image): \(error)") }
        } else {
            guard store == nil else { throw fail("--store is for --image") }
        }
        if rootDisk && image == nil {
            do {
                let directory = try ImageMicroVMRun.temporaryDirectory()
                scratch = directory
                // The guest image is its own first stage: it carries the virtio modules.
                let disk = try DiskGuest.rootDisk(directory: directory)
                options.drives = [disk] + options.drives
                options.rootDisk = true
                options.l2Description = "the guest image as an ext4 root disk on virtio-blk (\((Files.size(disk) ?? 0) >> 20) MiB), the guest image as first stage"
            } catch { throw fail("lab nested --root-disk: \(error)") }
        }
        let outcome: NestedLab.Outcome
        switch Result(catching: { () throws(LabError) in try NestedLab.run(options, line: progress) }) {
        case .success(let value): outcome = value
        case .failure(let error): throw fail(error.description)
        }
        let summary = LabSummary(outcome)
        if json {
            StandardOutput.write(summary.json(options).serialized() + "\n")
        } else {
            StandardOutput.write(summary.text())
        }
        if let signal = outcome.interruptedBy { throw ExitCode(128 + signal) }
        guard outcome.completed, outcome.errors.isEmpty else {
            if !verbose { StandardError.write(outcome.consoleTail.suffix(15).map { "  | " + $0 + "\n" }.joined()) }
            throw fail("the lab did not finish (L1 exited with status \(outcome.l1Status)): " + (outcome.errors.first ?? "see L1's last lines above"))
        }
        // In the server mode each boot ends with the SIGTERM that stops it (143).
        let expected = load == nil ? 0 : 128 + Int(SIGTERM)
        let tandemBoots = outcome.boots.filter { $0.vmm == "tandem" }
        if let bad = tandemBoots.first(where: { $0.status != expected }) { throw ExitCode(Int32(bad.status == 0 ? 1 : bad.status)) }
        if load != nil, let silent = outcome.boots.first(where: { $0.figures["server.requests_per_s"] == nil }) {
            let why = silent.figures["server.ended_during_load"] != nil ? "its VMM ended before the load was done (status \(silent.status)), or the load tool printed nothing"
                : "its server never answered"
            throw fail("lab nested --load: \(silent.vmm)'s boot \(silent.index) was not loaded: \(why)")
        }
    }
}
