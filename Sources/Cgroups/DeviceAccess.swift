import CLinux
import HostOS

/// One device rule (runtime-spec config-linux.md "Allowed Device List", the same as cgroup v1's
/// devices.allow / devices.deny lines): a type (`a` any, `c` character, `b` block), a major and a
/// minor number (nil: any), and the access (`r`ead, `w`rite, `m`knod).
public struct DeviceRule: Sendable, Equatable {
    public var allow: Bool
    public var type: String
    public var major: Int64?, minor: Int64?
    public var access: String

    public init(allow: Bool, type: String = "a", major: Int64? = nil, minor: Int64? = nil, access: String = "rwm") {
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
    }

    /// "c 1:3 rwm" (the v1 line; `*` for any number) → the rule, allowing.
    init(allowing line: String) {
        let parts = line.split(separator: " ")
        let numbers = parts[1].split(separator: ":")
        self.init(allow: true, type: String(parts[0]), major: Int64(numbers[0]), minor: Int64(numbers[1]), access: String(parts[2]))
    }

    /// The cgroup v1 devices.allow / devices.deny line: "c 1:3 rwm", "a *:* rwm".
    public var line: String { "\(type) \(major.map(String.init) ?? "*"):\(minor.map(String.init) ?? "*") \(access)" }

    /// The rule for CLinux's device program: access bits 1 mknod, 2 read, 4 write; -1 for any number.
    public var cRule: clinux_device_rule {
        clinux_device_rule(allow: allow ? 1 : 0, type: CChar(UInt8(ascii: type.unicodeScalars.first ?? "a")), major: major ?? -1, minor: minor ?? -1,
                           access: (access.contains("m") ? 1 : 0) | (access.contains("r") ? 2 : 0) | (access.contains("w") ? 4 : 0))
    }
}

/// Which devices a container may open or create: every container of both front ends gets a device
/// cgroup. Without one, root in a container that keeps CAP_MKNOD (the OCI and Docker default) can
/// `mknod` the host's /dev/kvm, /dev/net/tun or its console and open them.
public enum DeviceAccess {
    /// Devices every container may use whatever its rules say (runc's AllowedDevices without
    /// /dev/console, c 5:1): the standard nodes (null, zero, full, random, urandom, tty), ptmx and
    /// pseudo-terminals, and mknod of any node (opening one still needs an allow rule). A
    /// container's console is a pseudo-terminal (136:N); c 5:1 made with mknod is the host's.
    public static let alwaysAllowed: [DeviceRule] = ["c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                                                     "c 5:2 rwm", "c 136:* rwm", "c *:* m", "b *:* m"].map(DeviceRule.init(allowing:))

    /// Deny everything first: what a container gets before its own rules (the last match wins).
    public static let denyAll = DeviceRule(allow: false)

    /// The rules of a container that asks for nothing more: deny all, then the always-allowed nodes.
    public static var defaults: [DeviceRule] { [denyAll] + alwaysAllowed }

    /// Applies `rules` in order (the last matching rule decides) to `cgroup`: v1, its devices
    /// controller's deny and allow lists; v2, an eBPF device program attached to the cgroup
    /// (CLinux's devicefilter.c), which decides the same way.
    public static func apply(_ rules: [DeviceRule], to cgroup: any CgroupManager) throws(CgroupError) {
        guard let directory = cgroup.directory(for: "devices") else {
            throw CgroupError("this host has no cgroup devices controller: containers could open any device node")
        }
        if cgroup.version == .v2 {
            let cRules = rules.map(\.cRule)
            var message = [CChar](repeating: 0, count: 512)
            guard clinux_device_filter_attach(directory, cRules, Int32(cRules.count), &message, message.count) == 0 else {
                throw CgroupError("device program on \(directory): " + String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            return
        }
        for rule in rules { try cgroup.set("devices", rule.allow ? "devices.allow" : "devices.deny", rule.line) }
    }
}
