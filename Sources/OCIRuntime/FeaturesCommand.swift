import Containers
import HostOS

/// `features`: what this runtime implements, as JSON (the runtime spec's features document, features.md there).
enum FeaturesCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let strings = { (items: [String]) in JSON.array(items.map(JSON.string)) }
        let features = JSON.object([
            ("ociVersionMin", .string("1.0.0")), ("ociVersionMax", .string(RuntimeInfo.ociVersion)),
            ("hooks", strings(["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"])),
            ("mountOptions", strings((Array(MountOptions.flags.keys) + Array(MountOptions.propagation.keys)).sorted())),
            ("linux", .object([
                ("namespaces", strings(["cgroup", "ipc", "mount", "network", "pid", "user", "uts"])),
                ("capabilities", strings(Array(Capabilities.names.prefix(Capabilities.lastSupported + 1)))),
                ("cgroup", .object([("v1", .bool(true)), ("v2", .bool(true)), ("systemd", .bool(false)), ("systemdUser", .bool(false))])),
                ("seccomp", .object([
                    ("enabled", .bool(true)), ("actions", strings(OCIConfig.seccompActions)), ("operators", strings(OCIConfig.seccompOperators)),
                    ("archs", strings(["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"])),
                    ("supportedFlags", strings(OCIConfig.seccompFlags)),
                ])),
                ("apparmor", .object([("enabled", .bool(false))])),
                ("selinux", .object([("enabled", .bool(false))])),
            ])),
            ("annotations", .object([("io.github.tandem.runtime.version", .string(RuntimeInfo.version))])),
        ])
        StandardOutput.write(features.serialized(indent: 2) + "\n")
        return 0
    }
}
