import Containers
import HostOS
import MicroVM
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// What `tandem vm run` was asked to do, independent of how the command line was parsed.
public struct VMRunOptions: Equatable, Sendable {
    /// A tiny guest; nil boots Linux (--kernel, or the distro's cloud kernel).
    public var tiny: String?
    public var mode: CPUMode?
    /// MiB; nil takes the default of the guest kind (16 tiny, 256 Linux).
    public var memory: Int?
    public var kernel: String?
    public var initrd: String?
    public var cmdline: String?
    public var workload: String?
    public var vcpus: Int = 1
    public var arg: UInt64?
    public var timeout: Double = 0
    public var json = false
    public var kvmDevice = "/dev/kvm"
    /// Boot Linux even where /dev/kvm emulates guest instructions (it takes minutes, or hangs).
    public var allowEmulated = false
    /// `--drive PATH[,ro]`, in order: raw disks as virtio-blk (Firecracker calls them drives).
    public var drives: [String] = []
    /// `--root-disk PATH`: an ext4 disk image the guest's root is on — drive 0 (/dev/vda), with
    /// `tandem.root=/dev/vda` on the command line (tandem-init mounts it and switches root).
    public var rootDisk: String?
    /// `--net tap[=NAME]` or `bridge`, in order: network interfaces as virtio-net on a tap.
    public var nets: [String] = []
    /// `--vsock PATH`: a virtio-vsock device whose host side is the Unix socket PATH
    /// (Firecracker's model: `CONNECT <port>` there reaches a guest port; the guest's connections
    /// to host port P reach `PATH_P`).
    public var vsock: String?
    /// `--api-sock PATH`: the VM's control socket (pause, resume, snapshot, describe).
    public var apiSocket: String?
    /// `tandem vm restore DIR`: the snapshot directory to bring back instead of booting.
    public var restore: String?

    public init(tiny: String? = nil, mode: CPUMode? = nil, memory: Int? = nil, kernel: String? = nil, initrd: String? = nil,
                cmdline: String? = nil, workload: String? = nil, vcpus: Int = 1, arg: UInt64? = nil,
                timeout: Double = 0, json: Bool = false, kvmDevice: String = "/dev/kvm", allowEmulated: Bool = false, drives: [String] = [],
                rootDisk: String? = nil, nets: [String] = [], vsock: String? = nil, apiSocket: String? = nil, restore: String? = nil) {
        self.tiny = tiny
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.workload = workload
        self.vcpus = vcpus
        self.mode = mode
        self.memory = memory
        self.arg = arg
        self.timeout = timeout
        self.json = json
        self.kvmDevice = kvmDevice
        self.allowEmulated = allowEmulated
        self.drives = drives
        self.rootDisk = rootDisk
        self.nets = nets
        self.vsock = vsock
        self.apiSocket = apiSocket
        self.restore = restore
    }

    /// The control socket, listening at its path; an error names `--api-sock` and the failing call.
    public func openControlSocket() -> Result<UnixListener?, VMRunner.Message> {
        guard let apiSocket else { return .success(nil) }
        guard !apiSocket.isEmpty else { return .failure(VMRunner.Message(text: "--api-sock: must be the PATH of a Unix socket to make")) }
        do { return .success(try UnixListener(path: apiSocket, what: "control socket", backlog: 8)) } catch {
            return .failure(VMRunner.Message(text: "--api-sock \(apiSocket): \(error)"))
        }
    }

    /// The vsock device, listening at its path; an error names the `--vsock` and the failing call.
    /// Its socket file goes when the device does (on any failure below, too).
    public func openVsock() -> Result<VirtioVsock?, VMRunner.Message> {
        guard let vsock else { return .success(nil) }
        guard !vsock.isEmpty else { return .failure(VMRunner.Message(text: "--vsock: must be the PATH of a Unix socket to make")) }
        do { return .success(try VirtioVsock(path: vsock)) } catch {
            return .failure(VMRunner.Message(text: "--vsock \(vsock): \(error)"))
        }
    }

    /// The taps the `--net`s ask for, opened (a Tandem tap made and addressed); an error names
    /// the `--net` and the failing call, and the taps opened before it close with the array.
    public func openNets() -> Result<[VMConfig.Net], VMRunner.Message> {
        var nets: [VMConfig.Net] = []
        // Checked before any tap is made: a second bridge interface would be a second address.
        guard self.nets.filter({ $0 == "bridge" }).count <= 1 else { return .failure(VMRunner.Message(text: "--net bridge: once per VM")) }
        for text in self.nets {
            if text == "bridge" {
                switch Self.openOnBridge() {
                case .success(let net): nets.append(net)
                case .failure(let message): return .failure(message)
                }
                continue
            }
            let name: String?
            if text == "tap" { name = nil } else if text.hasPrefix("tap=") { name = String(text.dropFirst(4)) } else {
                return .failure(VMRunner.Message(text: "--net \(text): must be tap (Tandem makes and addresses one), tap=NAME (an existing or new tap, addressed by you) or bridge (on Tandem's bridge, with a leased address)"))
            }
            do { nets.append(VMConfig.Net(tap: try Tap.open(name: name), mac: Tap.randomMAC())) } catch {
                return .failure(VMRunner.Message(text: "--net \(text): \(error)"))
            }
        }
        return .success(nets)
    }

    /// `--net bridge`: a tap on Tandem's bridge (`tandembr0`, beside the containers) with an
    /// address leased as a container's. The lease's holder is this process (`/proc/PID`: stale
    /// once it is gone, also after SIGKILL; the tap goes with its descriptor then); it ends when
    /// the tap is released, the bridge with the last lease.
    public static func openOnBridge() -> Result<VMConfig.Net, VMRunner.Message> {
        let id = "vm" + String(UInt64(getpid()) << 24 ^ Clock.monotonicNanoseconds() & 0xff_ffff, radix: 16)
        return bridgeTap(id: id, address: nil).map { tap in
            StandardError.line("tandem: --net bridge: the guest is \(tap.guestAddress ?? "?") on \(BridgeNetwork.bridge) (tap \(tap.name))")
            return VMConfig.Net(tap: tap, mac: BridgeNetwork.guestMACBytes(for: tap.guestAddress ?? ""))
        }
    }

    /// A restored guest's tap on Tandem's bridge (`Machine.restore`'s `openBridgeTap`): the tap
    /// `name` made again, with the `address` the guest's RAM holds leased again — refused, by
    /// name, while another container or VM holds it.
    public static func reopenOnBridge(name: String, address: String) throws -> Tap {
        guard name.hasPrefix("tv") else { throw VMRunner.Message(text: "--net bridge: \(name) is not a bridge tap's name") }
        return try bridgeTap(id: String(name.dropFirst(2)), address: address).get()
    }

    /// The tap for lease holder `id` on the bridge (its name `BridgeNetwork.hostInterface(for: id)`),
    /// with the next free address or `address`. The lease's holder is this process.
    static func bridgeTap(id: String, address: String?) -> Result<Tap, VMRunner.Message> {
        guard getuid() == 0 else { return .failure(VMRunner.Message(text: "--net bridge: needs root (the bridge is the host's)")) }
        BridgeNetwork.sweepStale()
        let lease: BridgeNetwork.Lease
        do { lease = try BridgeNetwork.lease(for: id, stateDirectory: "/proc/\(getpid())", address: address) } catch {
            return .failure(VMRunner.Message(text: error.description))
        }
        do {
            return .success(try Tap.openOnBridge(name: lease.hostInterface, guestAddress: lease.address, gateway: BridgeNetwork.gateway,
                                                 attach: { BridgeNetwork.attachTap(lease) }, onRelease: { BridgeNetwork.release(id: id) }))
        } catch {
            return .failure(VMRunner.Message(text: "--net bridge: \(error)"))
        }
    }

    /// Every drive in bus order: the root disk first (read-write), then `--drive`s.
    public var allDrives: [String] { (rootDisk.map { [$0] } ?? []) + drives }

    /// The drives as the VM takes them; an error names the `--drive` that does not parse.
    public func parsedDrives() -> Result<[VMConfig.Drive], VMRunner.Message> {
        var drives: [VMConfig.Drive] = []
        if let rootDisk, rootDisk.isEmpty || rootDisk.hasSuffix(",ro") {
            return .failure(VMRunner.Message(text: "--root-disk \(rootDisk): must be the PATH of a writable ext4 image"))
        }
        for text in allDrives {
            var parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            var readOnly = false
            if parts.count > 1, parts.last == "ro" { readOnly = true; parts.removeLast() }
            let flag = drives.isEmpty && rootDisk != nil ? "--root-disk" : "--drive"
            guard parts.count == 1, let path = parts.first, !path.isEmpty else {
                return .failure(VMRunner.Message(text: "\(flag) \(text): must be PATH or PATH,ro"))
            }
            switch Files.kind(path) {
            case .regular: break
            case .missing: return .failure(VMRunner.Message(text: "\(flag) \(text): \(path) does not exist"))
            case .directory: return .failure(VMRunner.Message(text: "\(flag) \(text): \(path) is a directory, not a disk image"))
            case .other: return .failure(VMRunner.Message(text: "\(flag) \(text): \(path) is not a regular file (a FIFO, a device or a socket)"))
            }
            drives.append(VMConfig.Drive(path: path, readOnly: readOnly))
        }
        return .success(drives)
    }

    /// What is wrong with a timeout, for every backend: nil when it is 0 (no limit) or a
    /// positive number of seconds up to `VMConfig.maximumTimeoutSeconds`.
    public static func timeoutProblem(_ seconds: Double) -> String? {
        guard seconds.isFinite, seconds >= 0 else { return "--timeout \(seconds): must be 0 (no limit) or a positive number of seconds" }
        guard seconds <= VMConfig.maximumTimeoutSeconds else {
            return "--timeout \(seconds): at most \(Int(VMConfig.maximumTimeoutSeconds)) seconds (a year); 0 means no limit"
        }
        return nil
    }
}

/// The launch path's own parser for `tandem vm run` (see `Launcher`). It accepts the well-formed
/// command lines; anything else (help, an unknown flag, a value that does not parse, a missing
/// --tiny) returns nil and goes to the ArgumentParser CLI, which owns every message a user sees.
/// A test checks that both parsers agree on every line this one accepts.
public enum FastVMRunParser {
    public static func parse(_ arguments: ArraySlice<String>) -> VMRunOptions? {
        var options = VMRunOptions()
        var index = arguments.startIndex
        func value(_ name: String) -> String? {
            let next = arguments.index(after: index)
            // Like ArgumentParser, a separate value never starts with a dash ("--memory -1" is an error there).
            guard next < arguments.endIndex, !arguments[next].hasPrefix("-") else { return nil }
            index = next
            return arguments[next]
        }
        while index < arguments.endIndex {
            var argument = arguments[index]
            var inline: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                inline = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            func take() -> String? { inline ?? value(argument) }
            switch argument {
            case "--tiny":
                guard options.tiny == nil, let text = take() else { return nil }
                options.tiny = text
            case "--kernel", "--initrd", "--cmdline", "--workload":
                guard let text = take() else { return nil }
                switch argument {
                case "--kernel": options.kernel = text
                case "--initrd": options.initrd = text
                case "--cmdline": options.cmdline = text
                default: options.workload = text
                }
            case "--vcpus":
                guard let text = take(), let count = Int(text) else { return nil }
                options.vcpus = count
            case "--mode":
                guard let text = take(), let mode = CPUMode(rawValue: text) else { return nil }
                options.mode = mode
            case "--memory":
                guard let text = take(), let memory = Int(text) else { return nil }
                options.memory = memory
            case "--arg":
                guard let text = take(), let number = UInt64(text) else { return nil }
                options.arg = number
            case "--timeout":
                guard let text = take(), let seconds = Double(text) else { return nil }
                options.timeout = seconds
            case "--drive":
                guard let text = take() else { return nil }
                options.drives.append(text)
            case "--net":
                guard let text = take() else { return nil }
                options.nets.append(text)
            case "--root-disk":
                guard options.rootDisk == nil, let text = take() else { return nil }
                options.rootDisk = text
            case "--vsock":
                guard options.vsock == nil, let text = take() else { return nil }
                options.vsock = text
            case "--api-sock":
                guard options.apiSocket == nil, let text = take() else { return nil }
                options.apiSocket = text
            case "--kvm-device":
                guard let text = take() else { return nil }
                options.kvmDevice = text
            case "--json":
                guard inline == nil else { return nil }
                options.json = true
            case "--allow-emulated":
                guard inline == nil else { return nil }
                options.allowEmulated = true
            default:
                return nil
            }
            index = arguments.index(after: index)
        }
        return options
    }
}

/// The launch path's parser for `tandem vm restore DIR [--timeout S] [--json] [--api-sock PATH]
/// [--kvm-device PATH] [--allow-emulated]`; anything else goes to the ArgumentParser CLI, as for `FastVMRunParser`.
public enum FastVMRestoreParser {
    public static func parse(_ arguments: ArraySlice<String>) -> VMRunOptions? {
        guard let directory = arguments.first, !directory.hasPrefix("-"), var options = FastVMRunParser.parse(arguments.dropFirst()) else { return nil }
        // Only the flags a restore takes: the guest, its RAM and devices come from the snapshot.
        let taken = VMRunOptions(timeout: options.timeout, json: options.json, kvmDevice: options.kvmDevice, allowEmulated: options.allowEmulated,
                                 apiSocket: options.apiSocket)
        guard options == taken else { return nil }
        options.restore = directory
        return options
    }
}
