import Cgroups

/// `linux.resources` into the container's cgroup: `CgroupResources` (in Cgroups) does the
/// writing; here only what the config adds (its device nodes) and the "config.json: " in errors.
package enum ResourceWriter {
    package static func extraControllers(_ config: OCIConfig, version: CgroupVersion) -> [String] {
        config.resources.extraControllers(version: version)
    }

    /// The nodes the config makes (pipes need no rule) are allowed too.
    package static func ownDevices(_ config: OCIConfig) -> [DeviceRule] {
        config.devices.filter { $0.type != "p" }.map { DeviceRule(allow: true, type: $0.type == "b" ? "b" : "c", major: $0.major, minor: $0.minor) }
    }

    /// Returns what was ignored with a warning (see `CgroupResources.apply`).
    package static func apply(_ config: OCIConfig, to cgroup: any CgroupManager) throws(OCIError) -> [String] {
        do {
            let warnings = try config.resources.apply(to: cgroup)
            try config.resources.applyDevices(to: cgroup, ownDevices: ownDevices(config))
            return warnings
        } catch { throw OCIError("config.json: \(error.description)") }
    }

    package static func deviceRules(_ config: OCIConfig) -> [DeviceRule] {
        config.resources.deviceRules(ownDevices: ownDevices(config))
    }
}
