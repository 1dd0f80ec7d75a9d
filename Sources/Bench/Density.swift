import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// How many idle sandboxes fit: N of one backend started at once (workload `sleep`), and host
/// memory per sandbox once all are ready, two ways: the PSS of each launcher's process tree (the
/// launcher, a VMM, a container's processes; shared pages split fairly; kernel memory not in it)
/// and the drop in the kernel's MemAvailable divided by N (everything the host pays, including
/// QEMU started by libvirt, but a whole-host reading that other activity makes noisy at small N).
public struct DensityPoint: Codable, Sendable {
    public var backend: String
    public var count: Int
    /// All N ready, or how many were.
    public var ready: Int
    public var bytesPerSandbox: Double
    /// PSS of the launchers' process trees, per sandbox.
    public var pssPerSandbox: Double
    /// Spawn of the first → the last ready marker, ms.
    public var allReadyMs: Double
}

public enum Density {
    /// Backends whose launcher stops cleanly on SIGTERM (and leaves nothing): Tandem's own and QEMU.
    public static let supported = ["container", "libvirt", "qemu-microvm", "linux-microvm"]
    public static let idle = Workload("sleep", ["100000"])

    public static func measure(_ sandbox: any Sandbox, count: Int, timeoutSeconds: Double) -> DensityPoint? {
        guard case .success(let argv) = sandbox.command(for: idle, trial: 0) else { return nil }
        let before = memAvailable()
        let start = Clock.monotonicNanoseconds()
        var children: [(pid: pid_t, reader: FileDescriptor, ready: Bool, pending: [UInt8])] = []
        for _ in 0..<count {
            guard let child = try? Subprocess.spawnPiped(argv[0], Array(argv.dropFirst()), mergeStandardError: true, defaultSignals: true) else { continue }
            _ = fcntl(child.reader.rawValue, F_SETFL, O_NONBLOCK)
            children.append((child.pid, child.reader, false, []))
        }
        let deadline = start + Clock.nanoseconds(seconds: timeoutSeconds)
        var lastReady = start
        var buffer = [UInt8](repeating: 0, count: 65536)
        while children.contains(where: { !$0.ready }), Clock.monotonicNanoseconds() < deadline {
            var fds = children.map { pollfd(fd: $0.reader.rawValue, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 100)
            for index in children.indices where fds[index].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(children[index].reader.rawValue, $0.baseAddress, $0.count) }
                guard n > 0 else { continue }
                children[index].pending += buffer[0..<n]
                if !children[index].ready, String(decoding: children[index].pending, as: UTF8.self).contains("TANDEM-READY") {
                    children[index].ready = true
                    lastReady = Clock.monotonicNanoseconds()
                }
                if children[index].pending.count > 1 << 16 { children[index].pending.removeFirst(1 << 15) }
            }
        }
        usleep(500_000)  // let the last ones settle (guest RAM touched after the marker, page tables)
        let after = memAvailable()
        let pss = children.reduce(UInt64(0)) { $0 + treePSS($1.pid) }
        // Stop them all: SIGTERM (each cleans up its sandbox), then wait; drain their output meanwhile.
        for child in children { kill(child.pid, SIGTERM) }
        for child in children {
            var status: Int32 = 0
            while waitpid(child.pid, &status, 0) < 0 && errno == EINTR {}
            _ = child.reader
        }
        let ready = children.filter(\.ready).count
        return DensityPoint(backend: sandbox.name, count: count, ready: ready,
                            bytesPerSandbox: ready > 0 ? Double(Int64(before) - Int64(after)) / Double(count) : 0,
                            pssPerSandbox: count > 0 ? Double(pss) / Double(count) : 0,
                            allReadyMs: Double(lastReady - start) / 1e6)
    }

    /// MemAvailable, bytes (/proc/meminfo).
    static func memAvailable() -> UInt64 {
        for line in (Files.readText("/proc/meminfo") ?? "").split(separator: "\n") where line.hasPrefix("MemAvailable:") {
            return (line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0) * 1024
        }
        return 0
    }

    /// PSS (smaps_rollup) of `pid` and all its descendants, bytes.
    static func treePSS(_ pid: pid_t) -> UInt64 {
        var total: UInt64 = 0
        for line in (Files.readText("/proc/\(pid)/smaps_rollup") ?? "").split(separator: "\n") where line.hasPrefix("Pss:") {
            total += (line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) } ?? 0) * 1024
        }
        guard let tasks = opendir("/proc/\(pid)/task") else { return total }
        defer { closedir(tasks) }
        while let entry = readdir(tasks) {
            let tid = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard Int(tid) != nil else { continue }
            for child in (Files.readText("/proc/\(pid)/task/\(tid)/children") ?? "").split(separator: " ").compactMap({ pid_t($0) }) {
                total += treePSS(child)
            }
        }
        return total
    }
}
