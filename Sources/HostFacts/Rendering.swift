import HostOS

extension HostFacts {
    /// `tandem host --json`; also embedded in every result file Tandem writes.
    public var json: JSON {
        .object([
            ("schema", .string("tandem.host/1")),
            ("hostname", .string(hostname)),
            ("cpu_model", .string(cpuModel)),
            ("cpu_count", .int(Int64(cpuCount))),
            ("memory_mib", memoryMiB.map { .int(Int64($0)) } ?? .null),
            ("kernel_release", .string(kernelRelease)),
            ("cpu_flags", .object([("vmx", .bool(cpuHasVMX)), ("svm", .bool(cpuHasSVM)), ("hypervisor", .bool(underHypervisor))])),
            ("virtualisation", .object([
                ("mode", .string(virtualisation.rawValue)),
                ("explanation", .string(virtualisation.explanation)),
            ])),
            ("kvm", .object([
                ("path", .string(kvm.path)),
                ("present", .bool(kvm.present)),
                ("usable", .bool(kvm.usable)),
                ("api_version", kvm.apiVersion.map { .int(Int64($0)) } ?? .null),
                ("modules", .array(kvm.modules.map { .string($0) })),
                ("problem", kvm.problem.map { .string($0) } ?? .null),
            ])),
            ("cgroups", .object([
                ("layout", .string(cgroupLayout.rawValue)),
                ("v2_controllers", .array(cgroupV2Controllers.map { .string($0) })),
            ])),
            ("tools", .object(tools.map { tool in
                (tool.name, .object([
                    ("installed", .bool(tool.path != nil)),
                    ("path", tool.path.map { .string($0) } ?? .null),
                    ("version", tool.version.map { .string($0) } ?? .null),
                ]))
            })),
        ])
    }

    /// `tandem host`: aligned, one fact a line.
    public var text: String {
        var rows: [(String, String)] = [
            ("host", hostname),
            ("cpu", "\(cpuModel) (\(cpuCount) CPUs\(underHypervisor ? ", itself a virtual machine" : ""))"),
            ("memory", memoryMiB.map { "\($0) MiB" } ?? "unknown"),
            ("kernel", kernelRelease),
            ("virtualisation", "\(virtualisation.rawValue) — \(virtualisation.explanation)"),
            ("cpu flags", "vmx \(cpuHasVMX ? "yes" : "no"), svm \(cpuHasSVM ? "yes" : "no")"),
            ("/dev/kvm", kvmSummary),
            ("kvm modules", kvm.modules.isEmpty ? "none loaded" : kvm.modules.joined(separator: ", ")),
            ("cgroups", cgroupSummary),
        ]
        for tool in tools {
            rows.append((tool.name, tool.path.map { path in tool.version.map { "\($0) (\(path))" } ?? path } ?? "not installed"))
        }
        let width = rows.map(\.0.count).max() ?? 0
        return rows.map { $0.0 + String(repeating: " ", count: width - $0.0.count) + "  " + $0.1 }.joined(separator: "\n") + "\n"
    }

    var kvmSummary: String {
        if kvm.usable { return "usable, API version \(kvm.apiVersion.map(String.init) ?? "?")" }
        if !kvm.present { return "missing" }
        return "present but not usable: " + (kvm.problem ?? "unknown reason")
    }

    var cgroupSummary: String {
        switch cgroupLayout {
        case .v2: "v2 (unified)" + (cgroupV2Controllers.isEmpty ? "" : "; controllers: " + cgroupV2Controllers.joined(separator: " "))
        case .hybrid: "hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified"
            + (cgroupV2Controllers.isEmpty ? " with no controllers)" : " with " + cgroupV2Controllers.joined(separator: " ") + ")")
        case .v1: "v1 (legacy)"
        case .none: "not mounted"
        }
    }
}
