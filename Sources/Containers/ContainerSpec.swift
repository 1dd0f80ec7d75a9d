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
    }
    public enum Network: String, Sendable { case none, loopback }

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
    /// A user namespace mapping container ids 0..<idMapCount to host ids from `idMapBase`.
    public var userNamespace = false
    public var idMapBase: UInt32 = 100_000
    public var idMapCount: UInt32 = 65_536
    public var readOnly = false
    public var volumes: [Volume] = []
    public var limits = CgroupLimits()
    /// Where container state lives (`/run/tandem`).
    public var stateRoot = ContainerSpec.defaultStateRoot

    public static let defaultStateRoot = "/run/tandem"
    public static let defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
        let flag = { if case .image = root { "--image" } else { "--rootfs" } }()
        guard Files.kind(rootDirectory) == .directory else {
            throw ContainerError("\(flag) \(rootDirectory): \(Files.kind(rootDirectory) == .missing ? "does not exist" : "is not a directory")")
        }
        guard let program = command.first, !program.isEmpty else { throw ContainerError("no command to run") }
        guard let path = Self.resolve(program, in: rootDirectory, path: environmentValue("PATH") ?? Self.defaultPath) else {
            throw ContainerError("\(flag) \(rootDirectory) has no executable \(program)\(program.contains("/") ? "" : " on PATH")")
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

    /// `program` inside `root`: as given when it has a slash, else the first match on `path`.
    /// Every path is resolved inside the root (CLinux's clinux_stat_in_root: symlinks and ".."
    /// never leave it), so the host's own files are never what is found.
    public static func resolve(_ program: String, in root: String, path: String) -> String? {
        let candidates = program.contains("/") ? [program.hasPrefix("/") ? program : "/" + program]
            : path.split(separator: ":").map { "\($0)/\(program)" }
        let rootFD = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0 else { return nil }
        defer { close(rootFD) }
        for candidate in candidates where isExecutable(candidate, inRoot: rootFD) { return candidate }
        return nil
    }

    static func isExecutable(_ path: String, inRoot rootFD: Int32) -> Bool {
        var info = stat()
        guard clinux_stat_in_root(rootFD, path, &info) == 0 else { return false }
        return info.st_mode & S_IFMT == S_IFREG && info.st_mode & 0o111 != 0
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
