import HostOS

/// What an image's config (OCI image-spec config.md) says about running it, and its layers'
/// uncompressed digests. Docker and podman honour the same fields.
public struct ImageConfig: Sendable, Equatable {
    public var architecture: String
    public var os: String
    public var created: String?
    public var entrypoint: [String]
    public var cmd: [String]
    public var env: [String]
    public var workingDir: String?
    public var user: String?
    public var stopSignal: String?
    /// rootfs.diff_ids: each layer's digest uncompressed, bottom first.
    public var diffIDs: [Digest]

    /// Reads a config; `what` names it in errors.
    public init(_ bytes: [UInt8], what: String) throws(ImageError) {
        let json: JSON
        do { json = try JSON.parse(String(decoding: bytes, as: UTF8.self)) } catch { throw ImageError("\(what): \(error.description)") }
        guard json.members != nil else { throw ImageError("\(what): not a JSON object") }
        architecture = json["architecture"]?.string ?? ""
        os = json["os"]?.string ?? ""
        created = json["created"]?.string
        let config = json["config"] ?? .null
        func strings(_ key: String) throws(ImageError) -> [String] {
            guard let value = config[key], value != .null else { return [] }
            guard let texts = value.strings else { throw ImageError("\(what): config.\(key): not an array of strings") }
            return texts
        }
        func text(_ key: String) throws(ImageError) -> String? {
            guard let value = config[key], value != .null else { return nil }
            guard let text = value.string else { throw ImageError("\(what): config.\(key): not a string") }
            return text.isEmpty ? nil : text
        }
        entrypoint = try strings("Entrypoint")
        cmd = try strings("Cmd")
        env = try strings("Env")
        workingDir = try text("WorkingDir")
        user = try text("User")
        stopSignal = try text("StopSignal")
        for variable in env where !variable.contains("=") || variable.hasPrefix("=") {
            throw ImageError("\(what): config.Env: \"\(variable)\" is not NAME=VALUE")
        }
        if let workingDir, !workingDir.hasPrefix("/") { throw ImageError("\(what): config.WorkingDir \(workingDir): not an absolute path") }
        guard json["rootfs"]?["type"]?.string == "layers", let ids = json["rootfs"]?["diff_ids"]?.strings else {
            throw ImageError("\(what): rootfs: not {\"type\": \"layers\", \"diff_ids\": [...]}")
        }
        var diffIDs: [Digest] = []
        for id in ids {
            guard let digest = Digest(id) else { throw ImageError("\(what): rootfs.diff_ids: \(id): not a sha256 digest") }
            diffIDs.append(digest)
        }
        self.diffIDs = diffIDs
    }

    /// The command a container runs: Entrypoint + (the user's command, else Cmd), as Docker does.
    public func command(overriding given: [String]) -> [String] {
        entrypoint + (given.isEmpty ? cmd : given)
    }
}
