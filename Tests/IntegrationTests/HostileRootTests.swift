import CLinux
import Foundation
import Testing

/// Hostile root file systems, as an image's author could make them, through both front ends:
/// `tandem ctr run --rootfs` and `tandem-runtime run`. Whatever the outcome (the container runs, or
/// it is refused with the path named), nothing outside the root may be created, written or
/// mounted over: each case names host paths that must stay as they were, and the host's mount
/// table is compared before and after.
enum Hostile {
    /// A layout planted in a busybox root. `host` is a fresh host directory the symlinks aim at;
    /// `mounts` are extra bind mounts (source on the host, destination in the container).
    struct Case: CustomStringConvertible, Sendable {
        var name: String
        var plant: @Sendable (_ rootfs: String, _ host: String) throws -> Void
        var mounts: @Sendable (_ host: String) -> [(source: String, destination: String)] = { _ in [] }
        /// Host paths (under `host`) that must not exist afterwards.
        var mustNotExist: [String]
        var description: String { name }
    }

    static func symlink(_ path: String, to target: String) throws {
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    static let cases: [Case] = [
        Case(name: "dev is a symlink to a host directory",
             plant: { root, host in try symlink(root + "/dev", to: host + "/dev") }, mustNotExist: ["dev"]),
        Case(name: "proc is a symlink to a host directory",
             plant: { root, host in try symlink(root + "/proc", to: host + "/proc") }, mustNotExist: ["proc"]),
        Case(name: "a bind destination through a symlink to a host directory",
             plant: { root, host in
                 try FileManager.default.createDirectory(atPath: host + "/data", withIntermediateDirectories: true)
                 try symlink(root + "/data", to: host + "/data")
             },
             mounts: { host in [(host + "/source", "/data/sub")] }, mustNotExist: ["data/sub"]),
        Case(name: "a file bind target that is a dangling symlink to a host file",
             plant: { root, host in
                 try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
                 try symlink(root + "/etc/motd", to: host + "/created-by-runtime")
             },
             mounts: { host in [(host + "/source-file", "/etc/motd")] }, mustNotExist: ["created-by-runtime"]),
        Case(name: "a relative symlink climbing out with ../..",
             plant: { root, host in try symlink(root + "/up", to: "../../../../../../../../.." + host + "/up") },
             mounts: { host in [(host + "/source", "/up/x")] }, mustNotExist: ["up"]),
        Case(name: "a symlink loop",
             plant: { root, _ in try symlink(root + "/loop", to: "/loop") },
             mounts: { host in [(host + "/source", "/loop/x")] }, mustNotExist: []),
        Case(name: "a symlink through /proc/self/root (a magic link)",
             plant: { root, host in try symlink(root + "/magic", to: "/proc/self/root" + host + "/magic") },
             mounts: { host in [(host + "/source", "/magic/x")] }, mustNotExist: ["magic"]),
    ]

    /// Where podman and containerd, driven by other tests at the same time, mount and unmount on
    /// the host by themselves (podman binds its overlay storage on first use and drops it when
    /// idle): not what a hostile root could make Tandem do, and not stable across a test.
    static let othersMounts = ["/var/lib/containers/", "/run/containers/", "/var/lib/containerd/", "/run/containerd/", "/run/netns/"]

    /// The host's mount table, without the per-process parts that change by themselves.
    static func mountTable() -> [String] {
        ((try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)) ?? "").split(separator: "\n")
            .map { $0.split(separator: " ").dropFirst(3).prefix(2).joined(separator: " ") }
            .filter { entry in
                let point = entry.split(separator: " ").last.map(String.init) ?? ""
                return !othersMounts.contains { (point + "/").hasPrefix($0) }
            }
            .sorted()
    }

    /// A host directory for one case: `source` (a directory to bind) and `source-file`.
    static func hostDirectory() throws -> String {
        let host = "/tmp/tandem-hostile-" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: host + "/source", withIntermediateDirectories: true)
        try Data("from the host\n".utf8).write(to: URL(fileURLWithPath: host + "/source-file"))
        return host
    }
}

@Suite("Hostile root file systems cannot make the runtime touch the host", .enabled(if: OCI.available && Containers.available, "needs root, busybox, a built tandem-runtime and make image"))
struct HostileRootTests {
    enum FrontEnd: String, CaseIterable, Sendable { case ctr = "tandem ctr", runtime = "tandem-runtime" }

    @Test("nothing outside the root is created or mounted over", arguments: Hostile.cases, FrontEnd.allCases)
    func contained(_ hostile: Hostile.Case, _ frontEnd: FrontEnd) throws {
        let host = try Hostile.hostDirectory()
        defer { try? FileManager.default.removeItem(atPath: host) }
        let mounts = hostile.mounts(host)
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["true"]
            config["process"] = process
            var list = config["mounts"] as? [[String: Any]] ?? []
            for mount in mounts {
                list.append(["destination": mount.destination, "type": "bind", "source": mount.source, "options": ["rbind", "ro"]])
            }
            config["mounts"] = list
        }
        try hostile.plant(bundle.path + "/rootfs", host)
        let before = try FileManager.default.contentsOfDirectory(atPath: host).sorted()
        let table = Hostile.mountTable()

        let status: Int32, message: String
        switch frontEnd {
        case .ctr:
            let state = Containers.stateRoot()
            defer { Containers.cleanUp(state) }
            let volumes = mounts.flatMap { ["-v", "\($0.source):\($0.destination):ro"] }
            let result = try Tandem.run(["ctr", "run", "--state-root", state, "--rootfs", bundle.path + "/rootfs"] + volumes + ["--", "/bin/true"])
            (status, message) = (result.status, result.stderr)
        case .runtime:
            let runtime = OCI.Runtime.tandem()
            defer { runtime.cleanUp() }
            let id = OCI.unique("hostile")
            let result = try runtime("run", "--bundle", bundle.path, id)
            (status, message) = (result.status, result.stderr)
            OCI.expectNothingLeft(id, root: runtime.root)
        }
        for path in hostile.mustNotExist {
            #expect(!FileManager.default.fileExists(atPath: host + "/" + path), "\(frontEnd.rawValue): \(host)/\(path) was made on the host (status \(status): \(message))")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: host).sorted() == before, "\(frontEnd.rawValue): the host directory changed")
        #expect(Hostile.mountTable() == table, "\(frontEnd.rawValue): the host's mount table changed")
        // Recorded for the closing table: contained and ran, or refused with the path named.
        print("HOSTILE-ROOT \(hostile.name) | \(frontEnd.rawValue) | status \(status) | \(message.split(separator: "\n").first ?? "ran")")
        if status != 0 {
            #expect(mounts.contains { message.contains($0.destination) } || message.contains("/dev") || message.contains("/proc"),
                    "a refusal names the path: \(message)")
        }
    }

    @Test("a symlink swapped in and out while containers set up never leads outside the root", arguments: FrontEnd.allCases)
    func swappedDuringSetup(_ frontEnd: FrontEnd) throws {
        let host = try Hostile.hostDirectory()
        defer { try? FileManager.default.removeItem(atPath: host) }
        try FileManager.default.createDirectory(atPath: host + "/data", withIntermediateDirectories: true)
        let bundle = try OCI.Bundle { config in
            var process = config["process"] as! [String: Any]
            process["args"] = ["true"]
            config["process"] = process
            config["mounts"] = (config["mounts"] as? [[String: Any]] ?? []) + [["destination": "/data/sub", "type": "bind", "source": host + "/source", "options": ["rbind"]]]
        }
        let root = bundle.path + "/rootfs"
        // /data flips between a directory inside the root and a symlink to the host's directory.
        let flipper = Process()
        flipper.executableURL = URL(fileURLWithPath: "/bin/sh")
        flipper.arguments = ["-c", "while :; do rm -rf '\(root)/data'; ln -s '\(host)/data' '\(root)/data'; rm -f '\(root)/data'; mkdir -p '\(root)/data'; done"]
        try flipper.run()
        defer { flipper.terminate(); flipper.waitUntilExit() }
        let state = Containers.stateRoot()
        defer { Containers.cleanUp(state) }
        let runtime = OCI.Runtime.tandem()
        defer { runtime.cleanUp() }
        var outcomes: [Int32: Int] = [:]
        for attempt in 0..<20 {
            let status: Int32
            switch frontEnd {
            case .ctr:
                status = try Tandem.run(["ctr", "run", "--state-root", state, "--rootfs", root, "-v", host + "/source:/data/sub", "--", "/bin/true"]).status
            case .runtime:
                status = try runtime("run", "--bundle", bundle.path, "swap-\(attempt)-" + UUID().uuidString.prefix(6).lowercased()).status
            }
            outcomes[status, default: 0] += 1
            #expect(try FileManager.default.contentsOfDirectory(atPath: host + "/data").isEmpty, "\(frontEnd.rawValue): the host's directory was written")
        }
        print("HOSTILE-ROOT a symlink swapped during setup (20 runs) | \(frontEnd.rawValue) | statuses \(outcomes.sorted { $0.key < $1.key })")
    }

    @Test("the walk used where openat2 is missing resolves exactly as openat2 does, and stays inside")
    func walkMatchesOpenat2() throws {
        let host = try Hostile.hostDirectory()
        defer { try? FileManager.default.removeItem(atPath: host) }
        let root = host + "/root"
        let manager = FileManager.default
        try manager.createDirectory(atPath: root + "/a/b/c", withIntermediateDirectories: true)
        try Data("inside\n".utf8).write(to: URL(fileURLWithPath: root + "/a/b/c/file"))
        try manager.createDirectory(atPath: host + "/outside", withIntermediateDirectories: true)
        try Data("outside\n".utf8).write(to: URL(fileURLWithPath: host + "/outside/file"))
        try Hostile.symlink(root + "/abs", to: "/a/b")                  // absolute: from the root
        try Hostile.symlink(root + "/a/rel", to: "b/c")                 // relative
        try Hostile.symlink(root + "/up", to: "../../../../../..")      // climbs: stops at the root
        try Hostile.symlink(root + "/out", to: host + "/outside")       // a host path: inside the root instead
        try Hostile.symlink(root + "/loop", to: "/loop")
        try Hostile.symlink(root + "/a/chain", to: "/abs/c")
        let cases: [(String, String?)] = [
            ("/a/b/c/file", "inside"), ("abs/c/file", "inside"), ("/a/rel/file", "inside"), ("/up/a/b/c/file", "inside"),
            ("/a/../../../a/b/c/file", "inside"), ("/a/chain/file", "inside"), ("/out/file", nil), ("/loop/x", nil), ("/missing", nil),
        ]
        let rootFD = open(root, O_RDONLY | O_DIRECTORY)
        #expect(rootFD >= 0)
        defer { close(rootFD) }
        for (path, expected) in cases {
            for walk in [false, true] {
                let fd = walk ? clinux_walk_in_root(rootFD, path, O_RDONLY) : clinux_open_in_root(rootFD, path, O_RDONLY)
                if let expected {
                    #expect(fd >= 0, "\(path) (walk: \(walk))")
                    var buffer = [UInt8](repeating: 0, count: 64)
                    let count = fd >= 0 ? read(fd, &buffer, buffer.count) : -1
                    #expect(String(decoding: buffer.prefix(max(0, count)), as: UTF8.self) == expected + "\n", "\(path) (walk: \(walk))")
                } else {
                    #expect(fd < 0, "\(path) must not resolve (walk: \(walk))")
                }
                if fd >= 0 { close(fd) }
            }
        }
    }
}
