// libFuzzer target for the OCI config reader (config.json is the bundle's: attacker-controlled).
// Built by `make fuzz` against the Containers module compiled with -sanitize=fuzzer (coverage for
// the reader and the JSON parser under it). Any input must give a config or an OCIError with a
// message: never a crash, a hang or an overflow; and a config read keeps the promises the engine
// relies on (ids in 0...2147483647, no NUL byte in a string that reaches a C call, absolute mount
// destinations without "..", namespaces of known types).
import Containers

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let config: OCIConfig
    do {
        config = try OCIConfig.parse(text, bundle: "/nonexistent/tandem-fuzz-bundle")
    } catch {
        precondition(!error.description.isEmpty, "an error without a message")
        return 0
    }
    var strings = [config.hostname ?? "", config.domainname ?? "", config.rootPath]
    if let process = config.process {
        let ids = [process.user.uid, process.user.gid] + process.user.additionalGids
        precondition(ids.allSatisfy { $0 <= 2_147_483_647 }, "an id out of range was accepted: \(ids)")
        strings += process.args + process.env + [process.cwd]
    }
    for string in strings {
        precondition(!string.utf8.contains(0), "a NUL byte was accepted: \(string.debugDescription)")
    }
    for mount in config.mounts {
        precondition(mount.destination.hasPrefix("/") && !mount.destination.split(separator: "/").contains(".."),
                     "a bad mount destination was accepted: \(mount.destination)")
        for string in [mount.source ?? "", mount.type ?? ""] + mount.options {
            precondition(!string.utf8.contains(0), "a NUL byte was accepted in a mount: \(string.debugDescription)")
        }
    }
    let known: Set<String> = ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
    precondition(config.namespaces.allSatisfy { known.contains($0.type) }, "an unknown namespace type was accepted")
    return 0
}
