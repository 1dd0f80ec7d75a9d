import CLinux
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// What the probe looks for to tell whether a sandbox reaches the host (docs/bench.md, "What a
/// sandbox can reach"): a random nonce in a file in the bench's host temp directory, and the same
/// nonce in a key of root's kernel keyring. A probe that prints the nonce read it from the host;
/// a guess cannot match it.
public final class HostCanary {
    /// What every canary key's description starts with.
    public static let keyPrefix = "tandem-host-canary"
    public let nonce: String
    /// The key's description: the prefix and the bench's process id. A key is replaced in place
    /// when another with the same description is added to the same keyring, so two benches
    /// running at once would otherwise share (and remove) one key. The probe is given it as its
    /// second argument.
    public let keyDescription: String
    /// The file the probe is given as its argument.
    public let path: String
    /// The keyring key, or the reason there is none (the probe then cannot find it anywhere, and
    /// the report says so).
    public let key: Result<Int, SystemError>

    /// Writes the file under `directory` and adds the key; the key expires after `lifetime`
    /// seconds even if the bench is killed before `remove()`.
    public init(directory: String, lifetime: UInt32 = 3600) throws(SystemError) {
        var random = [UInt8](repeating: 0, count: 8)
        let source = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
        guard source >= 0 else { throw SystemError("open", "/dev/urandom") }
        defer { close(source) }
        guard read(source, &random, random.count) == random.count else { throw SystemError("read", "/dev/urandom") }
        nonce = random.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
        path = directory + "/host-canary"
        keyDescription = Self.keyPrefix + "-" + String(getpid())
        try Files.write(path, Array((nonce + "\n").utf8))
        let id = clinux_user_key_add(keyDescription, nonce, lifetime)
        key = id >= 0 ? .success(id) : .failure(SystemError("add_key", keyDescription, errno: Int32(-id)))
    }

    /// Removes the keys of benches that were killed (named after a process that is gone): they
    /// would otherwise stay until they expire. From /proc/keys: the key's id (hex) first, its
    /// description last ("tandem-host-canary-PID: 16").
    public static func sweep() {
        for line in (Files.readText("/proc/keys") ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first, let id = Int(first, radix: 16),
                  let named = fields.last(where: { $0.hasPrefix(keyPrefix + "-") }),
                  let pid = pid_t(named.dropFirst(keyPrefix.count + 1).prefix { $0 != ":" }),
                  pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            _ = clinux_user_key_remove(id)
        }
    }

    /// Removes the key (the file goes with the bench's temp directory).
    public func remove() {
        if case .success(let id) = key { _ = clinux_user_key_remove(id) }
        unlink(path)
    }
}
