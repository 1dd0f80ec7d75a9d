import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `spec [--bundle DIR] [--rootless]`: writes a default config.json, the same as `runc spec` (a
/// shell in `rootfs`, OCI default mounts, capabilities, masked and read-only paths, all devices
/// denied); with --rootless, as `runc spec --rootless`, for the calling user.
enum SpecCommand {
    static func defaultConfig() -> JSON { Defaults.config() }

    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("bundle", "b", value: true), Arguments.Flag("rootless")], command: "spec")
        try arguments.expectingNoMore(than: 0, "spec")
        let path = (arguments.value("bundle") ?? ".") + "/config.json"
        guard Files.kind(path) == .missing else { throw OCIError("spec: \(path) exists; remove it first") }
        let config = arguments.flag("rootless") ? Defaults.rootlessConfig(uid: geteuid(), gid: getegid()) : defaultConfig()
        do { try Files.write(path, Array((config.serialized(indent: 2) + "\n").utf8), mode: 0o644) } catch {
            throw OCIError("spec: \(error.description)")
        }
        return 0
    }
}
