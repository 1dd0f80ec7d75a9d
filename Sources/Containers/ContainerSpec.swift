import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A container's failure, in one line naming the input or the step and its argument.
public struct ContainerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Everything that describes one container, validated (see `ContainerSpec.validate`).
public struct ContainerSpec: Sendable {
    public enum Root: Sendable, Equatable {
        /// A read-only image directory shared by every container as the overlay's lower layer;
        /// each container writes to its own upper layer, removed with it.
        case image(String)
        /// A directory used as is (bind-mounted; writable unless `readOnly`).
        case rootfs(String)
        /// An image from the store: its layer directories, top first (overlay's lowerdir order),
        /// under the container's own writable layer.
        case layers([String])
    }
    /// none: a network namespace with `lo` down; loopback: `lo` up; bridge: `lo` up and `eth0` on
    /// Tandem's bridge (`BridgeNetwork`); host: no network namespace (the host's interfaces).
    public enum Network: String, Sendable { case none, loopback, bridge, host }

    public struct Volume: Sendable, Equatable {
        public var host: String
        public var container: String
        public var readOnly: Bool
        public init(host: String, container: String, readOnly: Bool) {
            self.host = host
            self.container = container
            self.readOnly = readOnly
        }
    }

    public var id: String
    public var name: String?
    public var root: Root
    /// argv; `command[0]` is looked up inside the root (PATH when it has no slash).
    public var command: [String]
    public var environment: [String]
    public var hostname: String
    public var network = Network.loopback
    /// `-p`: ports published on the host (bridge only).
    public var ports: [PublishedPort] = []
    /// A user namespace mapping container ids 0..<idMapCount to host ids from `idMapBase`.
    public var userNamespace = false
    public var idMapBase: UInt32 = 100_000
    public var idMapCount: UInt32 = 65_536
    /// Rootless: the ranges the container's user namespace maps (containerID, hostID, size), for
    /// an image from a rootless store (`ImageStore.idMapping`: the user and its /etc/subuid
    /// range); nil maps only the user's own uid and gid.
    public var rootlessMappings: (uid: [(UInt32, UInt32, UInt32)], gid: [(UInt32, UInt32, UInt32)])?
    public var readOnly = false
    public var volumes: [Volume] = []
    public var limits = CgroupLimits()
    /// Where container state lives (`/run/tandem`): the engine's store, the same layout
    /// `tandem-runtime --root /run/tandem` reads.
    public var stateRoot = ContainerSpec.defaultStateRoot
    /// The program's path inside the root, when the front end found it (a layered image's files
    /// are looked up across its layers, `LayeredRoot`); else `validate` looks in the root.
    public var program: String?
    /// The process's working directory and ids (an image's WorkingDir and User).
    public var workingDirectory = "/"
    public var user: (uid: UInt32, gid: UInt32, additionalGids: [UInt32]) = (0, 0, [])
    /// The store image it runs from (for `tandem image rm`, and ps) and what the user called it.
    public var imageID: String?
    public var imageName: String?
    /// The store it is in (an id is the same in every store that has the image).
    public var imageStore: String?
    /// The image's StopSignal (`tandem ctr stop` sends it instead of SIGTERM, as docker stop does).
    public var stopSignal: String?

    /// `/run/tandem` for root; for another user (rootless) `$XDG_RUNTIME_DIR/tandem`, or, with
    /// that unset, `/run/user/UID/tandem` (where systemd-logind puts it).
    public static var defaultStateRoot: String {
        let uid = geteuid()
        if uid == 0 { return "/run/tandem" }
        if let directory = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), directory.hasPrefix("/") { return directory + "/tandem" }
        return "/run/user/\(uid)/tandem"
    }
    /// Not root: the container gets a user namespace in which the caller's own uid and gid are
    /// root (the only ids a user may map without newuidmap), and a cgroup only where one is
    /// delegated (none: no limits).
    public static var rootless: Bool { geteuid() != 0 }
    public static let defaultPath = Defaults.path

    public init(id: String, root: Root, command: [String], hostname: String? = nil) {
        self.id = id
        self.root = root
        self.command = command
        self.hostname = hostname ?? String(id.prefix(12))
        environment = ["PATH=\(Self.defaultPath)", "HOME=/root"]
    }

    /// The directory the container's files come from.
    public var rootDirectory: String {
        switch root {
        case .image(let path), .rootfs(let path): path
        case .layers(let layers): layers.first ?? ""
        }
    }

    /// A new container id: 64 random hex digits, shown by its first 12 (as Docker does).
    public static func newID() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        if let fd = try? FileDescriptor.open("/dev/urandom", O_RDONLY) { _ = read(fd.rawValue, &bytes, bytes.count) }
        return bytes.map { String($0, radix: 16).leftPadded(2) }.joined()
    }

    /// Checks what can be checked before anything is created; returns the command's path inside
    /// the root. Each error names the input.
    public func validate() throws(ContainerError) -> String {
        let rootDirectory = rootDirectory
        let flag = { if case .rootfs = root { "--rootfs" } else { "--image" } }()
        let directories: [String] = if case .layers(let layers) = root { layers } else { [rootDirectory] }
        for directory in directories where Files.kind(directory) != .directory {
            throw ContainerError("\(flag) \(directory): \(Files.kind(directory) == .missing ? "does not exist" : "is not a directory")")
        }
        if case .layers(let layers) = root {
            if Self.rootless && rootlessMappings == nil {
                throw ContainerError("an image from the store, rootless: the store must be one of your own (tandem image import as this user), whose id ranges the container maps")
            }
            // overlay's options fit in one page: lowerdir's list with them.
            guard layers.joined(separator: ":").utf8.count < 3800 else {
                throw ContainerError("the image has \(layers.count) layers, whose paths exceed what overlay's mount options can hold (a shorter --store path helps)")
            }
        }
        guard let program = command.first, !program.isEmpty else { throw ContainerError("no command to run") }
        let found = self.program ?? Self.resolve(program, in: rootDirectory, path: environmentValue("PATH") ?? Self.defaultPath)
        guard let path = found else {
            throw ContainerError("\(flag) \(imageName ?? rootDirectory) has no executable \(program)\(program.contains("/") ? "" : " on PATH")")
        }
        if let name {
            // Docker's rule: [a-zA-Z0-9][a-zA-Z0-9_.-]* (the name is a file name in the store too).
            let allowed = name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0) }
            guard allowed, let first = name.unicodeScalars.first, !"_.-".unicodeScalars.contains(first), name.utf8.count <= 64 else {
                throw ContainerError("--name \(name): must be 1 to 64 of a-z A-Z 0-9 _ . - and start with a letter or digit")
            }
        }
        guard hostname.utf8.count <= 64, !hostname.isEmpty, !hostname.contains("/") else {
            throw ContainerError("--hostname \(hostname): must be 1 to 64 characters")
        }
        for volume in volumes {
            guard Files.kind(volume.host) != .missing else { throw ContainerError("--volume \(volume.host):\(volume.container): \(volume.host) does not exist") }
            guard volume.container.hasPrefix("/"), !volume.container.split(separator: "/").contains("..") else {
                throw ContainerError("--volume \(volume.host):\(volume.container): the container path must be absolute, without ..")
            }
        }
        if let memory = limits.memoryBytes, memory < Self.minimumMemory {
            throw ContainerError("--memory \(memory) bytes: below the minimum of \(CgroupLimits.describe(bytes: Self.minimumMemory))")
        }
        if let total = limits.memoryAndSwapBytes, total != .max {
            guard let memory = limits.memoryBytes else { throw ContainerError("--memory-swap needs --memory") }
            guard total >= memory else { throw ContainerError("--memory-swap must be at least --memory (it is memory plus swap)") }
        }
        return path
    }

    /// Docker's floor: below 6 MiB the container's own runtime pages do not fit.
    public static let minimumMemory: UInt64 = 6 << 20

    func environmentValue(_ key: String) -> String? {
        environment.last { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
    }

    /// `program` inside `root` (see `Launch.resolve`).
    public static func resolve(_ program: String, in root: String, path: String) -> String? {
        Launch.resolve(program, in: root, path: path)
    }

    /// Annotations a `tandem ctr` container carries in its config.json (and so in its state):
    /// what `inspect` shows beyond the engine's record.
    public enum Annotation {
        public static let image = "org.tandem.ctr.image"
        public static let limits = "org.tandem.ctr.limits"
        public static let volumes = "org.tandem.ctr.volumes"
        public static let network = "org.tandem.ctr.network"
        public static let ports = "org.tandem.ctr.ports"
        public static let userNamespace = "org.tandem.ctr.userns"
        public static let readOnly = "org.tandem.ctr.read-only"
        /// The store image a container runs from (its id, sha256:HEX): `tandem image rm` keeps it while the container runs.
        public static let imageID = "org.tandem.image.id"
        public static let imageStore = "org.tandem.image.store"
        /// The image config's StopSignal, under the key the image spec's conversion to a runtime config gives it.
        public static let stopSignal = "org.opencontainers.image.stopSignal"
    }

    /// The runtime-spec config.json this container is: `Defaults.config` with Docker's
    /// capabilities, no terminal, the caller's rlimits, and the options' root, hostname,
    /// environment, volumes, limits and user namespace. `rootPath` is the root's canonical path
    /// (the overlay's mount point for an image).
    public func ociConfig(rootPath: String) -> JSON {
        var resources: [(String, JSON)] = []
        var memory: [(String, JSON)] = []
        if let bytes = limits.memoryBytes { memory.append(("limit", .int(Int64(clamping: bytes)))) }
        if let total = limits.memoryAndSwapBytes { memory.append(("swap", .int(total == .max ? -1 : Int64(clamping: total)))) }
        if !memory.isEmpty { resources.append(("memory", .object(memory))) }
        if let quota = limits.cpuQuotaMicroseconds {
            resources.append(("cpu", .object([("quota", .int(Int64(quota))), ("period", .int(Int64(limits.cpuPeriodMicroseconds)))])))
        }
        if let pids = limits.pids { resources.append(("pids", .object([("limit", .int(Int64(pids)))]))) }
        var linux: [(String, JSON)] = [("cgroupsPath", .string("/\(ContainerRuntime.cgroupParent)/\(id)"))]
        var namespaces = Defaults.namespaces
        if network == .host { namespaces.removeAll { $0 == "network" } }
        if Self.rootless {
            namespaces.append("user")
            func own(_ id: UInt32) -> JSON { .array([.object([("containerID", .int(0)), ("hostID", .int(Int64(id))), ("size", .int(1))])]) }
            func ranges(_ list: [(UInt32, UInt32, UInt32)]) -> JSON {
                .array(list.map { .object([("containerID", .int(Int64($0.0))), ("hostID", .int(Int64($0.1))), ("size", .int(Int64($0.2)))]) })
            }
            if let mappings = rootlessMappings {
                linux += [("uidMappings", ranges(mappings.uid)), ("gidMappings", ranges(mappings.gid))]
            } else {
                linux += [("uidMappings", own(geteuid())), ("gidMappings", own(getegid()))]
            }
        } else if userNamespace {
            namespaces.append("user")
            let mapping = JSON.array([.object([("containerID", .int(0)), ("hostID", .int(Int64(idMapBase))), ("size", .int(Int64(idMapCount)))])])
            linux += [("uidMappings", mapping), ("gidMappings", mapping)]
        }
        let mounts: [JSON] = volumes.map { volume in
            Defaults.mount(volume.container, "bind", Files.absolute(volume.host), ["rbind", volume.readOnly ? "ro" : "rw"])
        }
        var annotations: [(String, String)] = [
            (Annotation.image, imageName ?? rootDirectory), (Annotation.limits, limits.described.joined(separator: " ")),
            (Annotation.volumes, volumes.map { "\($0.host):\($0.container)" + ($0.readOnly ? ":ro" : "") }.joined(separator: " ")),
            (Annotation.network, network.rawValue), (Annotation.userNamespace, userNamespace ? "true" : "false"),
            (Annotation.readOnly, readOnly ? "true" : "false"),
        ]
        if !ports.isEmpty { annotations.append((Annotation.ports, ports.map(\.description).joined(separator: " "))) }
        if let imageID { annotations.append((Annotation.imageID, imageID)) }
        if let imageStore { annotations.append((Annotation.imageStore, imageStore)) }
        if let stopSignal { annotations.append((Annotation.stopSignal, stopSignal)) }
        return Defaults.config(args: command, env: environment, terminal: false, capabilities: Defaults.dockerCapabilities, rlimits: [],
                               rootPath: rootPath, readonly: readOnly, hostname: hostname, extraMounts: mounts, resources: resources,
                               namespaces: namespaces, linuxExtras: linux, annotations: annotations, rootless: Self.rootless,
                               cwd: workingDirectory, user: user)
    }
}

/// Sizes as people write them: 6MB, 32m, 1g, 512k, 1048576 (units are powers of 1024, as Docker's).
public enum ByteSize {
    public static func parse(_ text: String) -> UInt64? {
        var digits = Substring(text.lowercased())
        var unit: UInt64 = 1
        for suffix in ["ib", "b"] where digits.hasSuffix(suffix) && digits.count > suffix.count { digits = digits.dropLast(suffix.count); break }
        switch digits.last {
        case "k": unit = 1 << 10; digits = digits.dropLast()
        case "m": unit = 1 << 20; digits = digits.dropLast()
        case "g": unit = 1 << 30; digits = digits.dropLast()
        case "t": unit = 1 << 40; digits = digits.dropLast()
        default: break
        }
        if let whole = UInt64(digits) {
            let (product, overflow) = whole.multipliedReportingOverflow(by: unit)
            return overflow ? nil : product
        }
        if let fraction = Double(digits), fraction > 0, fraction * Double(unit) < 1.8e19 { return UInt64(fraction * Double(unit)) }
        return nil
    }
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        String(repeating: pad, count: max(0, width - count)) + self
    }
}
