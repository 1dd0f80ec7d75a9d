import HostOS

/// Medians per VMM and the ratio Tandem / QEMU, as text and as JSON (schema tandem.lab/1).
public struct LabSummary {
    public let outcome: NestedLab.Outcome

    public init(_ outcome: NestedLab.Outcome) { self.outcome = outcome }

    public static func describe(_ boot: NestedLab.Boot) -> String {
        let ready = boot.readyMs.map { seconds($0) } ?? "never"
        return "ready \(ready), exit \(seconds(boot.exitMs)), status \(boot.status)"
    }

    static func seconds(_ ms: Double) -> String {
        let tenths = Int((ms / 10).rounded())
        return "\(tenths / 100).\(String(tenths % 100).leftPadded(2)) s"
    }

    public var vmms: [String] {
        var seen: [String] = []
        for boot in outcome.boots where !seen.contains(boot.vmm) { seen.append(boot.vmm) }
        return seen
    }

    public static func median(_ values: [Double]) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    func figures(_ vmm: String) -> (ready: [Double], exit: [Double]) {
        let boots = outcome.boots.filter { $0.vmm == vmm }
        return (boots.compactMap(\.readyMs), boots.map(\.exitMs))
    }

    public func text() -> String {
        let l1 = outcome.l1Kernel == outcome.kernel ? "the same kernel" : outcome.l1Kernel
        var out = "nested lab: L2 = \(outcome.kernel) + \(outcome.l2), on L1's kvm-amd; L1 = \(l1) under QEMU TCG (emulated)\n"
        for vmm in vmms {
            let (ready, exit) = figures(vmm)
            out += "  \(vmm.padded(7)) n=\(exit.count)  ready median \(Self.median(ready).map(Self.seconds) ?? "-")"
                + " [\(ready.min().map(Self.seconds) ?? "-") – \(ready.max().map(Self.seconds) ?? "-")]"
                + "  exit median \(Self.median(exit).map(Self.seconds) ?? "-")\n"
        }
        if let ratio = readyRatio() { out += "  tandem/qemu ready ratio (medians): \(String(Double(Int(ratio * 1000)) / 1000))\n" }
        for key in figureKeys {
            out += "  \(key):"
            for vmm in vmms {
                let values = figure(key, vmm)
                guard let median = Self.median(values) else { continue }
                out += "  \(vmm) \(Self.number(median)) [\(Self.number(values.min()!)) – \(Self.number(values.max()!))]"
            }
            if let ratio = figureRatio(key) { out += "  tandem/qemu \(String(Double(Int(ratio * 1000)) / 1000))" }
            out += "\n"
        }
        for (index, hash) in outcome.driveHashes.sorted(by: { $0.key < $1.key }) { out += "  drive \(index) after the last boot: sha256 \(hash)\n" }
        if let snapshots = snapshotFigures {
            func ms(_ values: [Double], _ unit: String = "ms") -> String {
                guard let median = Self.median(values) else { return "-" }
                return "\(Self.number(median)) \(unit) [\(Self.number(values.min()!)) – \(Self.number(values.max()!))]"
            }
            out += "  snapshots: \(snapshots.restores) restores, \(snapshots.agreeing) finished with the cold boot's result and status\n"
            out += "    VMM start → first KVM_RUN: cold boot \(ms(snapshots.bootFirstRun)), restore \(ms(snapshots.restoreFirstRun))\n"
            out += "    snapshot written \(ms(snapshots.snapshotMs)); memory file \(ms(snapshots.allocatedMiB, "MiB")) allocated; state file \(ms(snapshots.stateKiB, "KiB"))\n"
        }
        return out
    }

    /// With `--snapshot`: the restores against the cold boots (nil without restores).
    public struct SnapshotFigures {
        public var restores = 0, agreeing = 0
        /// From each run's own report: VMM start → first KVM_RUN, ms.
        public var bootFirstRun: [Double] = [], restoreFirstRun: [Double] = []
        public var snapshotMs: [Double] = [], allocatedMiB: [Double] = [], stateKiB: [Double] = []
    }

    public var snapshotFigures: SnapshotFigures? {
        let restores = outcome.boots.filter { $0.vmm == "tandem-restore" }
        guard !restores.isEmpty else { return nil }
        var figures = SnapshotFigures()
        figures.restores = restores.count
        for restore in restores {
            if agrees(restore) { figures.agreeing += 1 }
            if let value = Self.firstRun(restore) { figures.restoreFirstRun.append(value) }
            let answer = restore.snapshot.flatMap { try? JSON.parse($0) }
            if let value = Self.number(answer, "snapshot_ms") { figures.snapshotMs.append(value) }
            if let value = Self.number(answer, "memory_allocated_bytes") { figures.allocatedMiB.append(value / 1_048_576) }
            if let value = Self.number(answer, "state_bytes") { figures.stateKiB.append(value / 1024) }
        }
        figures.bootFirstRun = outcome.boots.filter { $0.vmm == "tandem" }.compactMap(Self.firstRun)
        return figures
    }

    /// VMM start → first KVM_RUN, from a boot's own `vm run --json` report.
    public static func firstRun(_ boot: NestedLab.Boot) -> Double? {
        guard let report = boot.report.flatMap({ try? JSON.parse($0) }), case .double(let value)? = report["phases_ms"]?["first_run"] else { return nil }
        return value
    }

    /// A number in a JSON object, however it was written.
    public static func number(_ json: JSON?, _ key: String) -> Double? {
        switch json?[key] {
        case .double(let value)?: value
        case .int(let value)?: Double(value)
        case .uint(let value)?: Double(value)
        default: nil
        }
    }

    /// Whether a restore finished with the first cold boot's result line, status and answer (the
    /// workload's figures without its timings and rates: compute's primes and sum, blkio's MiB;
    /// nor vsockio's `resets`, the connections a restore reset, which it sent again).
    public func agrees(_ restore: NestedLab.Boot) -> Bool {
        func answer(_ boot: NestedLab.Boot) -> [String: Double] {
            boot.figures.filter { !$0.key.hasSuffix("ms") && !$0.key.hasSuffix("_s") && !$0.key.hasSuffix("iops") && !$0.key.hasSuffix("resets") }
        }
        guard let cold = outcome.boots.first(where: { $0.vmm == "tandem" }), restore.result != nil else { return false }
        return restore.result == cold.result && restore.status == cold.status && answer(restore) == answer(cold)
    }


    /// The workloads' figures any boot reported, sorted ("blkio.read_mib_s", ...).
    public var figureKeys: [String] { Set(outcome.boots.flatMap(\.figures.keys)).sorted() }

    func figure(_ key: String, _ vmm: String) -> [Double] { outcome.boots.filter { $0.vmm == vmm }.compactMap { $0.figures[key] } }

    /// Tandem's median over QEMU's for a workload figure (higher is better for throughput).
    public func figureRatio(_ key: String) -> Double? {
        guard let ours = Self.median(figure(key, "tandem")), let theirs = Self.median(figure(key, "qemu")), theirs > 0 else { return nil }
        return ours / theirs
    }

    static func number(_ value: Double) -> String {
        value >= 100 ? String(Int(value.rounded())) : String(Double(Int((value * 10).rounded())) / 10)
    }

    public func readyRatio() -> Double? {
        guard let ours = Self.median(figures("tandem").ready), let theirs = Self.median(figures("qemu").ready), theirs > 0 else { return nil }
        return ours / theirs
    }

    /// One boot as the report lists it.
    static func json(_ boot: NestedLab.Boot) -> JSON {
        func hashed(_ value: (sha256: String, bytes: Int)?) -> JSON {
            guard let value else { return .null }
            return .object([("sha256", .string(value.sha256)), ("bytes", .int(Int64(value.bytes)))])
        }
        let figures: [(String, JSON)] = boot.figures.sorted { $0.key < $1.key }.map { ($0.key, JSON.double($0.value)) }
        let extra: [(String, JSON)] = [("result", boot.result.map { .string($0) } ?? .null)]
            + (boot.snapshot.map { text in [("snapshot", (try? JSON.parse(text)) ?? .string(text))] } ?? [])
        let ready: JSON = boot.readyMs.map { JSON.double($0) } ?? .null
        let report: JSON = boot.report.map { JSON.verbatim($0) } ?? .null
        return .object([("vmm", .string(boot.vmm)), ("run", .int(Int64(boot.index))), ("status", .int(Int64(boot.status))),
                        ("ready_ms", ready), ("exit_ms", .double(boot.exitMs)), ("figures", .object(figures)),
                        ("net_received", hashed(boot.netReceived)), ("vsock_received", hashed(boot.vsockReceived)),
                        ("vsock_echoed", hashed(boot.vsockEchoed))] + extra + [("report", report)])
    }

    public func json(_ options: LabOptions) -> JSON {
        func stats(_ values: [Double]) -> JSON {
            .object([("n", .int(Int64(values.count))), ("median", Self.median(values).map { .double($0) } ?? .null),
                     ("min", values.min().map { .double($0) } ?? .null), ("max", values.max().map { .double($0) } ?? .null)])
        }
        return .object([
            ("schema", .string("tandem.lab/1")),
            ("lab", .string("nested: L1 QEMU TCG -cpu EPYC + kvm-amd; L2 on L1's /dev/kvm")),
            ("l2", .string(outcome.l2)),
            ("kernel", .string(outcome.kernel)),
            ("l1_kernel", .string(outcome.l1Kernel)),
            ("workload", .string(options.workload)),
            ("vcpus", .int(Int64(options.vcpus))),
            ("memory_mib", .int(Int64(options.memoryMiB))),
            ("completed", .bool(outcome.completed)),
            ("errors", .array(outcome.errors.map { .string($0) })),
            ("boots", .array(outcome.boots.map(Self.json))),
            ("summary", .object(vmms.map { vmm in
                let (ready, exit) = figures(vmm)
                return (vmm, .object([("ready_ms", stats(ready)), ("exit_ms", stats(exit)),
                                      ("figures", .object(figureKeys.map { ($0, stats(figure($0, vmm))) }))]))
            })),
            ("tandem_over_qemu_ready", readyRatio().map { .double($0) } ?? .null),
            ("tandem_over_qemu_figures", .object(figureKeys.compactMap { key in figureRatio(key).map { (key, .double($0)) } })),
            ("drive_sha256", .object(outcome.driveHashes.sorted { $0.key < $1.key }.map { (String($0.key), .string($0.value)) })),
            ("snapshot", snapshotFigures.map { figures in
                .object([("restores", .int(Int64(figures.restores))), ("agreeing", .int(Int64(figures.agreeing))),
                         ("boot_first_run_ms", stats(figures.bootFirstRun)), ("restore_first_run_ms", stats(figures.restoreFirstRun)),
                         ("snapshot_ms", stats(figures.snapshotMs)), ("memory_allocated_mib", stats(figures.allocatedMiB)),
                         ("state_kib", stats(figures.stateKiB))])
            } ?? .null),
        ])
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
    func padded(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
}
