import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A bundle's config.json (OCI runtime-spec 1.x, config.md and config-linux.md), read strictly:
/// a wrong type, a missing required field, an unknown namespace or capability, a bad mapping is an
/// error naming the field. Fields this runtime knows but cannot honour are errors too
/// (`unsupported`), except those the spec lets a runtime ignore. Unknown fields are ignored, as
/// the spec requires, and listed in `notes`.
public struct OCIConfig: Sendable {
    public struct User: Sendable {
        public var uid: UInt32 = 0, gid: UInt32 = 0
        public var umask: Int?
        public var additionalGids: [UInt32] = []
    }
    public struct CapabilitySets: Sendable {
        public var bounding: UInt64 = 0, effective: UInt64 = 0, permitted: UInt64 = 0, inheritable: UInt64 = 0, ambient: UInt64 = 0
    }
    public struct Rlimit: Sendable { public var resource: Int32; public var soft: UInt64; public var hard: UInt64 }
    public struct Process: Sendable {
        public var terminal = false
        public var consoleSize: (height: UInt16, width: UInt16)?
        public var user = User()
        public var args: [String] = []
        public var env: [String] = []
        public var cwd = "/"
        public var capabilities = CapabilitySets()
        public var rlimits: [Rlimit] = []
        public var noNewPrivileges = false
        public var oomScoreAdj: Int?
        /// The AppArmor profile and the SELinux label the program runs under (set for its exec).
        public var appArmorProfile: String?
        public var seLinuxLabel: String?
    }
    public struct Mount: Sendable {
        public var destination: String
        public var type: String?
        public var source: String?
        public var options: [String] = []
    }
    public struct Hook: Sendable {
        public var path: String
        public var args: [String] = []
        public var env: [String] = []
        public var timeout: Int?
    }
    public struct Hooks: Sendable {
        public var prestart: [Hook] = [], createRuntime: [Hook] = [], createContainer: [Hook] = []
        public var startContainer: [Hook] = [], poststart: [Hook] = [], poststop: [Hook] = []
        public var isEmpty: Bool { prestart.isEmpty && createRuntime.isEmpty && createContainer.isEmpty && startContainer.isEmpty && poststart.isEmpty && poststop.isEmpty }
    }
    public struct Namespace: Sendable { public var type: String; public var path: String? }
    public struct IDMapping: Sendable { public var containerID: UInt32; public var hostID: UInt32; public var size: UInt32 }
    public struct Device: Sendable {
        public var type: String, path: String
        public var major: Int64, minor: Int64
        public var fileMode: UInt32?
        public var uid: UInt32?, gid: UInt32?
    }
    /// linux.resources.devices[]: the rule type both front ends share (Cgroups' DeviceAccess).
    public typealias DeviceRule = Cgroups.DeviceRule
    /// linux.resources: the cgroup settings (`CgroupResources`, beside the v1 and v2 managers).
    public typealias Resources = CgroupResources
    public typealias ThrottleDevice = CgroupResources.ThrottleDevice
    public struct SeccompArgument: Sendable { public var index: UInt32; public var value: UInt64; public var valueTwo: UInt64; public var op: String }
    public struct SeccompRule: Sendable {
        public var names: [String]
        public var action: String
        public var errnoRet: UInt32?
        public var args: [SeccompArgument] = []
    }
    public struct Seccomp: Sendable {
        public var defaultAction: String
        public var defaultErrnoRet: UInt32?
        public var architectures: [String] = []
        public var flags: [String] = []
        public var syscalls: [SeccompRule] = []
    }

    public var ociVersion: String
    /// The bundle directory, absolute; relative paths in the config (root.path, bind sources) are relative to it.
    public var bundle = ""
    public var process: Process?
    /// The root file system, made absolute (a relative root.path is relative to the bundle).
    public var rootPath: String
    public var rootReadonly = false
    public var hostname: String?
    public var domainname: String?
    public var mounts: [Mount] = []
    public var hooks = Hooks()
    public var annotations: [(String, String)] = []
    public var namespaces: [Namespace] = []
    public var uidMappings: [IDMapping] = []
    public var gidMappings: [IDMapping] = []
    public var sysctl: [(String, String)] = []
    public var resources = Resources()
    public var cgroupsPath: String?
    public var rootfsPropagation: UInt = 0
    public var maskedPaths: [String] = []
    public var readonlyPaths: [String] = []
    public var devices: [Device] = []
    public var seccomp: Seccomp?
    public var personality: Int?
    /// linux.mountLabel: the SELinux context of the file systems mounted for the container
    /// (`context=` on tmpfs, devpts, mqueue: runc's choice).
    public var mountLabel: String?
    /// Unknown fields (ignored, as the spec requires) and known ones that change nothing here.
    public var unknownFields: [String] = []
    public var ignoredFields: [String] = []
    /// What the runtime ignores and says so on stderr and in its log, as runc warns: a setting
    /// the spec deprecates or the host cannot apply.
    public var warnings: [String] = []

    public func has(_ namespace: String) -> Bool { namespaces.contains { $0.type == namespace } }
    public func newNamespace(_ namespace: String) -> Bool { namespaces.contains { $0.type == namespace && $0.path == nil } }

    /// Reads `<bundle>/config.json`.
    public static func load(bundle: String) throws(OCIError) -> OCIConfig {
        let path = bundle + "/config.json"
        guard let text = Files.readText(path) else {
            throw OCIError("\(path): \(Files.kind(bundle) == .missing ? "the bundle directory does not exist" : "cannot read config.json (\(SystemError("open", path).reason))")")
        }
        return try parse(text, bundle: bundle)
    }

    public static func parse(_ text: String, bundle: String) throws(OCIError) -> OCIConfig {
        let json: JSON
        do { json = try JSON.parse(text) } catch { throw OCIError("config.json: not valid JSON: \(error.description)") }
        return try read(json, bundle: bundle)
    }

    /// Reads a config already parsed (a front end's own, built in memory): the same checks.
    package static func read(_ json: JSON, bundle: String) throws(OCIError) -> OCIConfig {
        let notes = ConfigNotes()
        let top = try Field(path: "", value: json, notes: notes).members(known: [
            "ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux",
            "solaris", "windows", "vm", "zos",
        ])
        for other in ["solaris", "windows", "vm", "zos"] where top[other] != nil {
            throw OCIError("config.json: \(other): a configuration for another platform; this runtime runs Linux containers")
        }
        let version = try top.required("ociVersion", in: "").string()
        guard version.hasPrefix("1.") else {
            throw OCIError("config.json: ociVersion: \"\(version)\" is not a 1.x version of the runtime spec")
        }
        let root = try top.required("root", in: "").members(known: ["path", "readonly"])
        var rootPath = try root.required("path", in: "root").string()
        if !rootPath.hasPrefix("/") { rootPath = bundle + "/" + rootPath }
        var config = OCIConfig(ociVersion: version, rootPath: rootPath)
        config.bundle = bundle
        config.rootReadonly = try root["readonly"]?.bool() ?? false
        if let process = top["process"] { config.process = try readProcess(process, notes: notes) }
        config.hostname = try top["hostname"]?.string()
        config.domainname = try top["domainname"]?.string()
        for item in try top["mounts"]?.array() ?? [] {
            let mount = try item.members(known: ["destination", "type", "source", "options", "uidMappings", "gidMappings"])
            let destination = try mount.required("destination", in: item.path).string()
            guard destination.hasPrefix("/") else { throw mount["destination"]!.error("must be an absolute path, got \"\(destination)\"") }
            guard !destination.split(separator: "/").contains("..") else { throw mount["destination"]!.error("must not contain ..") }
            for unsupported in ["uidMappings", "gidMappings"] where mount[unsupported] != nil {
                throw mount[unsupported]!.error("id-mapped mounts are not supported by this runtime")
            }
            let entry = Mount(destination: destination, type: try mount["type"]?.string(),
                              source: try mount["source"]?.string(), options: try mount["options"]?.strings() ?? [])
            try checkKernelInterfaces(entry, bundle: bundle, field: item)
            config.mounts.append(entry)
        }
        if let hooks = top["hooks"] { config.hooks = try readHooks(hooks) }
        config.annotations = try top["annotations"]?.stringMap() ?? []
        if let linux = top["linux"] { try readLinux(linux, into: &config, notes: notes) }
        // A uts namespace of its own, new or joined by path (the name is then set in the joined one).
        for (field, value) in [("hostname", config.hostname), ("domainname", config.domainname)] where !(value ?? "").isEmpty && !config.has("uts") {
            throw OCIError("config.json: \(field): setting it needs a uts namespace in linux.namespaces (new, or joined by path)")
        }
        config.unknownFields = notes.unknown
        config.ignoredFields = notes.ignored
        config.warnings = notes.warnings
        return config
    }

    /// runc's rule for root.path: it must be the directory's canonical path (no "..", ".", or
    /// symlink on the way), so what is checked is what becomes the root; and it must not be the
    /// host's own "/".
    package static func checkRoot(_ path: String) throws(OCIError) {
        func error(_ message: String) -> OCIError { OCIError("config.json: root.path: \(message)") }
        let components = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        let lexicallyClean = !components.contains { $0 == "." || $0 == ".." || $0.isEmpty } || path == "/"
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let canonical = realpath(path, &buffer).map { String(cString: $0) }
        guard lexicallyClean, let canonical, canonical == path else {
            throw error("\"\(path)\" is not the canonical path of a directory" + (canonical.map { " (it is \($0))" } ?? ""))
        }
        guard canonical != "/" else { throw error("\"\(path)\" is the host's root directory") }
    }

    /// Paths under /proc and /sys are the kernel's interfaces: a writable bind of the host's
    /// (its /proc/sys is the host kernel's settings) is refused, and nothing may be mounted over a
    /// /proc path except the files runc allows (lxcfs's, /proc/sys/kernel/ns_last_pid).
    package static let procMountsAllowed = ["/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps", "/proc/uptime",
                                    "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev", "/proc/sys/kernel/ns_last_pid"]

    package static func checkKernelInterfaces(_ mount: Mount, bundle: String, field: Field) throws(OCIError) {
        func under(_ path: String, _ top: String) -> Bool { path == top || path.hasPrefix(top + "/") }
        let bind = mount.type == "bind" || mount.options.contains("bind") || mount.options.contains("rbind")
        if bind, let source = mount.source {
            let absolute = source.hasPrefix("/") ? source : bundle + "/" + source
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let resolved = realpath(absolute, &buffer).map { String(cString: $0) } ?? absolute
            if (under(resolved, "/proc") || under(resolved, "/sys")) && !mount.options.contains("ro") {
                throw field.error("a writable bind of the host's \(resolved): add \"ro\" (the container would change the host kernel's settings)")
            }
        }
        if under(mount.destination, "/proc"), mount.destination != "/proc", !procMountsAllowed.contains(mount.destination) {
            throw field.error("destination \(mount.destination): mounting over the container's /proc is allowed only for \(procMountsAllowed.joined(separator: ", "))")
        }
    }

    package static func readProcess(_ field: Field, notes: ConfigNotes) throws(OCIError) -> Process {
        let members = try field.members(known: [
            "terminal", "consoleSize", "user", "args", "commandLine", "env", "cwd", "capabilities", "rlimits",
            "noNewPrivileges", "apparmorProfile", "oomScoreAdj", "selinuxLabel", "scheduler", "ioPriority", "execCPUAffinity",
        ])
        var process = Process()
        process.terminal = try members["terminal"]?.bool() ?? false
        if let size = members["consoleSize"]?.value, members["consoleSize"] != nil {
            let sizeMembers = try Field(path: "process.consoleSize", value: size, notes: notes).members(known: ["height", "width"])
            process.consoleSize = (UInt16(try sizeMembers.required("height", in: "process.consoleSize").int(in: 0...65535)),
                                   UInt16(try sizeMembers.required("width", in: "process.consoleSize").int(in: 0...65535)))
        }
        let user = try members.required("user", in: "process").members(known: ["uid", "gid", "umask", "additionalGids", "username"])
        process.user.uid = try user.required("uid", in: "process.user").id()
        process.user.gid = try user.required("gid", in: "process.user").id()
        process.user.umask = (try user["umask"]?.int(in: 0...0o777)).map { Int($0) }
        for gid in try user["additionalGids"]?.array() ?? [] { process.user.additionalGids.append(try gid.id()) }
        if user["username"] != nil { throw user["username"]!.error("is for Windows containers") }
        process.args = try members.required("args", in: "process").strings()
        guard !process.args.isEmpty, !process.args[0].isEmpty else { throw members["args"]!.error("must name a program (args[0])") }
        if members["commandLine"] != nil { throw members["commandLine"]!.error("is for Windows containers") }
        process.env = try members["env"]?.strings() ?? []
        for (index, entry) in process.env.enumerated() where !entry.contains("=") {
            throw OCIError("config.json: process.env[\(index)]: \"\(entry)\" is not KEY=value")
        }
        process.cwd = try members.required("cwd", in: "process").string()
        guard process.cwd.hasPrefix("/") else { throw members["cwd"]!.error("must be an absolute path, got \"\(process.cwd)\"") }
        if let caps = members["capabilities"] {
            let sets = try caps.members(known: ["bounding", "effective", "permitted", "inheritable", "ambient"])
            func mask(_ name: String) throws(OCIError) -> UInt64 {
                guard let set = sets[name] else { return 0 }
                return try Capabilities.mask(try set.strings(), field: set.path, notes: notes)
            }
            process.capabilities = CapabilitySets(bounding: try mask("bounding"), effective: try mask("effective"), permitted: try mask("permitted"),
                                                  inheritable: try mask("inheritable"), ambient: try mask("ambient"))
        }
        for item in try members["rlimits"]?.array() ?? [] {
            let limit = try item.members(known: ["type", "soft", "hard"])
            let type = try limit.required("type", in: item.path).string()
            guard let resource = ResourceLimits.numbers[type] else { throw limit["type"]!.error("unknown rlimit \"\(type)\"") }
            guard !process.rlimits.contains(where: { $0.resource == resource }) else { throw limit["type"]!.error("\(type) is given twice") }
            let soft = try limit.required("soft", in: item.path).uint64(), hard = try limit.required("hard", in: item.path).uint64()
            guard soft <= hard else { throw item.error("soft limit \(soft) is above the hard limit \(hard)") }
            process.rlimits.append(Rlimit(resource: resource, soft: soft, hard: hard))
        }
        process.noNewPrivileges = try members["noNewPrivileges"]?.bool() ?? false
        process.oomScoreAdj = (try members["oomScoreAdj"]?.int(in: -1000...1000)).map { Int($0) }
        // A profile or label is applied where the host runs that security module, and refused
        // where it does not: the container would run unconfined (runc and crun refuse too).
        if let field = members["apparmorProfile"], case let profile = try field.string(), !profile.isEmpty {
            guard HostSecurity.appArmorEnabled else {
                throw field.error("\"\(profile)\": AppArmor is not enabled on this host, so the container cannot be confined by it")
            }
            process.appArmorProfile = profile
        }
        if let field = members["selinuxLabel"], case let label = try field.string(), !label.isEmpty {
            guard HostSecurity.seLinuxEnabled else {
                throw field.error("\"\(label)\": SELinux is not enabled on this host, so the container cannot run under that label")
            }
            process.seLinuxLabel = label
        }
        for unsupported in ["scheduler", "ioPriority", "execCPUAffinity"] where members[unsupported] != nil {
            throw members[unsupported]!.error("not supported by this runtime")
        }
        return process
    }

    package static func readHooks(_ field: Field) throws(OCIError) -> Hooks {
        let kinds = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
        let members = try field.members(known: kinds)
        func list(_ kind: String) throws(OCIError) -> [Hook] {
            var hooks: [Hook] = []
            for item in try members[kind]?.array() ?? [] {
                let hook = try item.members(known: ["path", "args", "env", "timeout"])
                let path = try hook.required("path", in: item.path).string()
                guard path.hasPrefix("/") else { throw hook["path"]!.error("must be an absolute path, got \"\(path)\"") }
                let timeout = (try hook["timeout"]?.int64()).map { Int($0) }
                if let timeout, timeout <= 0 { throw hook["timeout"]!.error("must be greater than zero, got \(timeout)") }
                hooks.append(Hook(path: path, args: try hook["args"]?.strings() ?? [], env: try hook["env"]?.strings() ?? [], timeout: timeout))
            }
            return hooks
        }
        return Hooks(prestart: try list("prestart"), createRuntime: try list("createRuntime"), createContainer: try list("createContainer"),
                     startContainer: try list("startContainer"), poststart: try list("poststart"), poststop: try list("poststop"))
    }

    package static let namespaceTypes = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]

    package static func readLinux(_ field: Field, into config: inout OCIConfig, notes: ConfigNotes) throws(OCIError) {
        let linux = try field.members(known: [
            "namespaces", "uidMappings", "gidMappings", "timeOffsets", "devices", "cgroupsPath", "rootfsPropagation",
            "resources", "maskedPaths", "readonlyPaths", "mountLabel", "sysctl", "seccomp", "personality", "intelRdt",
            "memoryPolicy",
        ])
        for item in try linux["namespaces"]?.array() ?? [] {
            let namespace = try item.members(known: ["type", "path"])
            let type = try namespace.required("type", in: item.path).string()
            guard namespaceTypes.contains(type) else {
                throw namespace["type"]!.error("unknown namespace type \"\(type)\" (one of \(namespaceTypes.joined(separator: ", ")))")
            }
            guard !config.has(type) else { throw namespace["type"]!.error("the \(type) namespace is listed twice") }
            if type == "time" { throw namespace["type"]!.error("time namespaces are not supported by this runtime") }
            let path = try namespace["path"]?.string()
            if let path {
                guard Files.kind(path) != .missing else { throw namespace["path"]!.error("\(path) does not exist") }
            }
            config.namespaces.append(Namespace(type: type, path: path))
        }
        for (key, target) in [("uidMappings", \OCIConfig.uidMappings), ("gidMappings", \OCIConfig.gidMappings)] {
            for item in try linux[key]?.array() ?? [] {
                let mapping = try item.members(known: ["containerID", "hostID", "size"])
                let entry = IDMapping(containerID: try mapping.required("containerID", in: item.path).uint32(),
                                      hostID: try mapping.required("hostID", in: item.path).uint32(),
                                      size: try mapping.required("size", in: item.path).uint32())
                guard entry.size > 0 else { throw mapping["size"]!.error("must be at least 1") }
                guard UInt64(entry.containerID) + UInt64(entry.size) <= UInt64(UInt32.max) + 1,
                      UInt64(entry.hostID) + UInt64(entry.size) <= UInt64(UInt32.max) + 1 else { throw item.error("the range runs past 2^32") }
                config[keyPath: target].append(entry)
            }
            let list = config[keyPath: target]
            if !list.isEmpty && !config.newNamespace("user") {
                throw OCIError("config.json: linux.\(key): mappings need a new user namespace in linux.namespaces")
            }
            for (i, a) in list.enumerated() {
                for b in list[(i + 1)...] where a.containerID < b.containerID + b.size && b.containerID < a.containerID + a.size {
                    throw OCIError("config.json: linux.\(key): container ranges \(a.containerID)+\(a.size) and \(b.containerID)+\(b.size) overlap")
                }
            }
        }
        if config.newNamespace("user") && (config.uidMappings.isEmpty || config.gidMappings.isEmpty) {
            throw OCIError("config.json: linux.uidMappings/gidMappings: a new user namespace needs both mappings")
        }
        if linux["timeOffsets"] != nil { throw linux["timeOffsets"]!.error("time namespaces are not supported by this runtime") }
        for item in try linux["devices"]?.array() ?? [] {
            let device = try item.members(known: ["type", "path", "major", "minor", "fileMode", "uid", "gid"])
            let type = try device.required("type", in: item.path).string()
            guard ["c", "b", "u", "p"].contains(type) else { throw device["type"]!.error("\"\(type)\" is not one of c, b, u, p") }
            let path = try device.required("path", in: item.path).string()
            guard path.hasPrefix("/dev/"), !path.split(separator: "/").contains("..") else {
                throw device["path"]!.error("\"\(path)\" is not a path under /dev")
            }
            var entry = Device(type: type, path: path, major: 0, minor: 0)
            if type != "p" {
                entry.major = try device.required("major", in: item.path).int(in: 0...4095)
                entry.minor = try device.required("minor", in: item.path).int(in: 0...1_048_575)
            }
            entry.fileMode = (try device["fileMode"]?.int(in: 0...0o7777)).map { UInt32($0) }
            entry.uid = try device["uid"]?.id()
            entry.gid = try device["gid"]?.id()
            config.devices.append(entry)
        }
        config.cgroupsPath = try linux["cgroupsPath"]?.string()
        if let propagation = linux["rootfsPropagation"] {
            let name = try propagation.string()
            guard let value = MountOptions.propagation[name] else {
                throw propagation.error("\"\(name)\" is not one of \(MountOptions.propagation.keys.sorted().joined(separator: ", "))")
            }
            config.rootfsPropagation = value
        }
        if let resources = linux["resources"] { config.resources = try readResources(resources) }
        config.maskedPaths = try linux["maskedPaths"]?.strings() ?? []
        config.readonlyPaths = try linux["readonlyPaths"]?.strings() ?? []
        for (name, paths) in [("maskedPaths", config.maskedPaths), ("readonlyPaths", config.readonlyPaths)] {
            for path in paths where !path.hasPrefix("/") { throw OCIError("config.json: linux.\(name): \"\(path)\" is not an absolute path") }
        }
        if let field = linux["mountLabel"], case let label = try field.string(), !label.isEmpty {
            guard HostSecurity.seLinuxEnabled else {
                throw field.error("\"\(label)\": SELinux is not enabled on this host, so the container's mounts cannot carry that label")
            }
            config.mountLabel = label
        }
        if let sysctl = linux["sysctl"] {
            config.sysctl = try sysctl.stringMap()
            for (key, _) in config.sysctl { try validateSysctl(key, config: config) }
        }
        if let seccomp = linux["seccomp"] { config.seccomp = try readSeccomp(seccomp) }
        if let personality = linux["personality"] {
            let members = try personality.members(known: ["domain", "flags"])
            let domain = try members.required("domain", in: personality.path).string()
            switch domain {
            case "LINUX": config.personality = 0
            case "LINUX32": config.personality = 0x0008  // PER_LINUX32
            default: throw members["domain"]!.error("\"\(domain)\" is not LINUX or LINUX32")
            }
            if let flags = members["flags"], !(try flags.strings()).isEmpty { throw flags.error("personality flags are not supported by this runtime") }
        }
        for unsupported in ["intelRdt", "memoryPolicy"] where linux[unsupported] != nil {
            throw linux[unsupported]!.error("not supported by this runtime")
        }
    }

    /// Only namespaced sysctls can be set for one container (runc's rule): the rest would change the host.
    package static func validateSysctl(_ key: String, config: OCIConfig) throws(OCIError) {
        let ipc = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
                   "kernel.shmmni", "kernel.shm_rmid_forced"]
        func need(_ namespace: String) throws(OCIError) {
            guard config.newNamespace(namespace) || config.namespaces.contains(where: { $0.type == namespace }) else {
                throw OCIError("config.json: linux.sysctl.\(key): needs its own \(namespace) namespace in linux.namespaces")
            }
        }
        if ipc.contains(key) || key.hasPrefix("fs.mqueue.") { return try need("ipc") }
        if key.hasPrefix("net.") { return try need("network") }
        if key == "kernel.hostname" || key == "kernel.domainname" { return try need("uts") }
        throw OCIError("config.json: linux.sysctl.\(key): not a namespaced sysctl; setting it would change the host")
    }

    package static func readResources(_ field: Field) throws(OCIError) -> Resources {
        let members = try field.members(known: ["devices", "memory", "cpu", "pids", "blockIO", "hugepageLimits", "network", "rdma", "unified"])
        var resources = Resources()
        for item in try members["devices"]?.array() ?? [] {
            let rule = try item.members(known: ["allow", "type", "major", "minor", "access"])
            var entry = DeviceRule(allow: try rule.required("allow", in: item.path).bool())
            entry.type = try rule["type"]?.string() ?? "a"
            guard ["a", "c", "b"].contains(entry.type) else { throw rule["type"]!.error("\"\(entry.type)\" is not one of a, c, b") }
            entry.major = (try rule["major"]?.int(in: -1...4095)).flatMap { $0 < 0 ? nil : $0 }
            entry.minor = (try rule["minor"]?.int(in: -1...1_048_575)).flatMap { $0 < 0 ? nil : $0 }
            entry.access = try rule["access"]?.string() ?? "rwm"
            guard !entry.access.isEmpty, entry.access.allSatisfy({ "rwm".contains($0) }) else {
                throw rule["access"]!.error("\"\(entry.access)\" is not a combination of r, w, m")
            }
            resources.devices.append(entry)
        }
        if let memory = members["memory"] {
            let m = try memory.members(known: ["limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy", "checkBeforeUpdate"])
            resources.memoryLimit = try m["limit"]?.int64()
            resources.memoryReservation = try m["reservation"]?.int64()
            resources.memorySwap = try m["swap"]?.int64()
            resources.swappiness = (try m["swappiness"]?.int(in: 0...100)).map { UInt64($0) }
            resources.disableOOMKiller = try m["disableOOMKiller"]?.bool()
            for deprecated in ["kernel", "kernelTCP"] where m[deprecated] != nil {
                _ = try m[deprecated]!.int64()
                field.notes.warnings.append("linux.resources.memory.\(deprecated): kernel memory limits are deprecated in the runtime spec and ignored (as runc and crun do)")
            }
            if let limit = resources.memoryLimit, limit > 0, let swap = resources.memorySwap, swap > 0, swap < limit {
                throw m["swap"]!.error("\(swap) is below memory.limit \(limit) (swap is memory plus swap)")
            }
        }
        if let cpu = members["cpu"] {
            let c = try cpu.members(known: ["shares", "quota", "burst", "period", "realtimeRuntime", "realtimePeriod", "cpus", "mems", "idle"])
            resources.cpuShares = try c["shares"]?.uint64()
            resources.cpuQuota = try c["quota"]?.int64()
            resources.cpuPeriod = try c["period"]?.uint64()
            resources.cpus = try c["cpus"]?.string()
            resources.mems = try c["mems"]?.string()
            resources.cpuRealtimeRuntime = try c["realtimeRuntime"]?.int64()
            resources.cpuRealtimePeriod = try c["realtimePeriod"]?.uint64()
            for unsupported in ["burst", "idle"] where c[unsupported] != nil { throw c[unsupported]!.error("not supported by this runtime") }
        }
        if let pids = members["pids"] {
            resources.pidsLimit = try pids.members(known: ["limit"]).required("limit", in: pids.path).int64()
        }
        if let blockIO = members["blockIO"] {
            let b = try blockIO.members(known: ["weight", "leafWeight", "weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                                                "throttleReadIOPSDevice", "throttleWriteIOPSDevice"])
            resources.blkioWeight = (try b["weight"]?.int(in: 10...1000)).map { UInt64($0) }
            resources.blkioLeafWeight = (try b["leafWeight"]?.int(in: 10...1000)).map { UInt64($0) }
            if let device = b["weightDevice"] { throw device.error("not supported by this runtime") }
            for (key, file) in [("throttleReadBpsDevice", "read_bps"), ("throttleWriteBpsDevice", "write_bps"),
                                ("throttleReadIOPSDevice", "read_iops"), ("throttleWriteIOPSDevice", "write_iops")] {
                guard let list = b[key] else { continue }
                var devices: [ThrottleDevice] = []
                for item in try list.array() {
                    let d = try item.members(known: ["major", "minor", "rate"])
                    devices.append(ThrottleDevice(major: try d.required("major", in: item.path).int(in: 0...4095),
                                                  minor: try d.required("minor", in: item.path).int(in: 0...1_048_575),
                                                  rate: try d.required("rate", in: item.path).uint64()))
                }
                resources.throttle.append((file, devices))
            }
        }
        for item in try members["hugepageLimits"]?.array() ?? [] {
            let h = try item.members(known: ["pageSize", "limit"])
            resources.hugepageLimits.append((try h.required("pageSize", in: item.path).string(), try h.required("limit", in: item.path).uint64()))
        }
        if let network = members["network"] {
            let n = try network.members(known: ["classID", "priorities"])
            resources.netClassID = try n["classID"]?.uint32()
            for item in try n["priorities"]?.array() ?? [] {
                let p = try item.members(known: ["name", "priority"])
                let interface = try p.required("name", in: item.path).string()
                guard !interface.isEmpty, !interface.contains(" "), !interface.contains("\n") else { throw p["name"]!.error("not an interface name") }
                resources.netPriorities.append((interface, try p.required("priority", in: item.path).uint32()))
            }
        }
        if let rdma = members["rdma"] { throw rdma.error("not supported by this runtime") }
        resources.unified = try members["unified"]?.stringMap() ?? []
        for (key, _) in resources.unified where key.contains("/") || key.hasPrefix(".") {
            throw OCIError("config.json: linux.resources.unified.\(key): not a cgroup control file name")
        }
        return resources
    }

    package static let seccompActions = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
                                 "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG"]
    package static let seccompOperators = ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]
    package static let seccompFlags = ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]

    package static func readSeccomp(_ field: Field) throws(OCIError) -> Seccomp {
        let s = try field.members(known: ["defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata", "syscalls"])
        func action(_ f: Field) throws(OCIError) -> String {
            let name = try f.string()
            if name == "SCMP_ACT_NOTIFY" { throw f.error("SCMP_ACT_NOTIFY (a seccomp listener) is not supported by this runtime") }
            guard seccompActions.contains(name) else { throw f.error("unknown action \"\(name)\" (one of \(seccompActions.joined(separator: ", ")))") }
            return name
        }
        var seccomp = Seccomp(defaultAction: try action(try s.required("defaultAction", in: field.path)))
        seccomp.defaultErrnoRet = try s["defaultErrnoRet"]?.uint32()
        seccomp.architectures = try s["architectures"]?.strings() ?? []
        for arch in seccomp.architectures where !arch.hasPrefix("SCMP_ARCH_") {
            throw OCIError("config.json: linux.seccomp.architectures: \"\(arch)\" is not an SCMP_ARCH_ name")
        }
        seccomp.flags = try s["flags"]?.strings() ?? []
        for flag in seccomp.flags where !seccompFlags.contains(flag) {
            throw OCIError("config.json: linux.seccomp.flags: unknown flag \"\(flag)\" (one of \(seccompFlags.joined(separator: ", ")))")
        }
        if let listener = s["listenerPath"], !(try listener.string()).isEmpty { throw listener.error("seccomp listeners are not supported by this runtime") }
        for item in try s["syscalls"]?.array() ?? [] {
            let r = try item.members(known: ["names", "action", "errnoRet", "args", "comment", "includes", "excludes"])
            var rule = SeccompRule(names: try r.required("names", in: item.path).strings(), action: try action(try r.required("action", in: item.path)))
            guard !rule.names.isEmpty else { throw r["names"]!.error("must name at least one syscall") }
            rule.errnoRet = try r["errnoRet"]?.uint32()
            for argument in try r["args"]?.array() ?? [] {
                let a = try argument.members(known: ["index", "value", "valueTwo", "op"])
                let op = try a.required("op", in: argument.path).string()
                guard seccompOperators.contains(op) else { throw a["op"]!.error("unknown operator \"\(op)\"") }
                rule.args.append(SeccompArgument(index: UInt32(try a.required("index", in: argument.path).int(in: 0...5)),
                                                 value: try a.required("value", in: argument.path).uint64(),
                                                 valueTwo: try a["valueTwo"]?.uint64() ?? 0, op: op))
            }
            seccomp.syscalls.append(rule)
        }
        return seccomp
    }
}

/// Linux security modules on this host (a config's profile or label can only be ignored where
/// the module is off).
package enum HostSecurity {
    package static var appArmorEnabled: Bool { (Files.readText("/sys/module/apparmor/parameters/enabled") ?? "").hasPrefix("Y") }
    package static var seLinuxEnabled: Bool { Files.kind("/sys/fs/selinux/enforce") == .regular }
}
