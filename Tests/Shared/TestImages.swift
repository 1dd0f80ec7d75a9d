import Foundation

// Test images made by the tests themselves, offline: tar layers written byte by byte (so a test
// can write exactly the hostile entry it needs), OCI image layouts around them, and the same
// images through skopeo into oci-archive and docker-archive. Shared by ImagesTests and
// IntegrationTests (this file is linked into both).

/// A tar archive, one entry at a time (ustar headers; a PAX header first when a path is long or
/// the entry has xattrs).
struct TarBuilder {
    private(set) var data = Data()

    enum Kind: UInt8 { case file = 48, hardLink = 49, symlink = 50, char = 51, block = 52, directory = 53, fifo = 54 }

    mutating func file(_ path: String, _ content: Data, mode: Int = 0o644, uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000, xattrs: [(String, String)] = []) {
        entry(path, kind: .file, content: content, mode: mode, uid: uid, gid: gid, mtime: mtime, xattrs: xattrs)
    }
    mutating func file(_ path: String, _ text: String, mode: Int = 0o644, uid: Int = 0, gid: Int = 0, xattrs: [(String, String)] = []) {
        file(path, Data(text.utf8), mode: mode, uid: uid, gid: gid, xattrs: xattrs)
    }
    mutating func directory(_ path: String, mode: Int = 0o755, uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000) {
        entry(path, kind: .directory, mode: mode, uid: uid, gid: gid, mtime: mtime)
    }
    mutating func symlink(_ path: String, to target: String) { entry(path, kind: .symlink, mode: 0o777, link: target) }
    mutating func hardLink(_ path: String, to target: String) { entry(path, kind: .hardLink, mode: 0o644, link: target) }
    mutating func device(_ path: String, major: Int, minor: Int) { entry(path, kind: .char, mode: 0o666, major: major, minor: minor) }

    /// Any header, as given (hostile tests: `..`, absolute paths).
    mutating func entry(_ path: String, kind: Kind, content: Data = Data(), mode: Int, uid: Int = 0, gid: Int = 0, mtime: Int = 1_700_000_000,
                        link: String = "", major: Int = 0, minor: Int = 0, xattrs: [(String, String)] = []) {
        var pax: [(String, String)] = xattrs.map { ("SCHILY.xattr." + $0.0, $0.1) }
        if path.utf8.count > 99 { pax.append(("path", path)) }
        if !pax.isEmpty {
            var records = Data()
            for (key, value) in pax {
                let body = " \(key)=\(value)\n"
                var length = body.utf8.count + 1
                while String(length).count + body.utf8.count != length { length = String(length).count + body.utf8.count }
                records += Data("\(length)\(body)".utf8)
            }
            header(name: "PaxHeader", type: 120, size: records.count, mode: 0o644, uid: 0, gid: 0, mtime: mtime, link: "", major: 0, minor: 0)
            append(records)
        }
        header(name: String(path.prefix(99)), type: kind.rawValue, size: content.count, mode: mode, uid: uid, gid: gid, mtime: mtime, link: link, major: major, minor: minor)
        append(content)
    }

    private mutating func append(_ bytes: Data) {
        data += bytes
        if bytes.count % 512 != 0 { data += Data(count: 512 - bytes.count % 512) }
    }

    private mutating func header(name: String, type: UInt8, size: Int, mode: Int, uid: Int, gid: Int, mtime: Int, link: String, major: Int, minor: Int) {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ text: String, _ offset: Int, _ length: Int) {
            for (index, byte) in text.utf8.prefix(length).enumerated() { block[offset + index] = byte }
        }
        func octal(_ value: Int, _ offset: Int, _ length: Int) {
            put(String(String(value, radix: 8).suffix(length - 1)).leftPad(length - 1), offset, length - 1)
        }
        put(name, 0, 100)
        octal(mode, 100, 8); octal(uid, 108, 8); octal(gid, 116, 8); octal(size, 124, 12); octal(mtime, 136, 12)
        block[156] = type
        put(link, 157, 100)
        put("ustar", 257, 6); put("00", 263, 2)
        put("root", 265, 32); put("root", 297, 32)
        octal(major, 329, 8); octal(minor, 337, 8)
        for index in 148..<156 { block[index] = 32 }
        let sum = block.reduce(0) { $0 + Int($1) }
        put(String(String(sum, radix: 8)).leftPad(6), 148, 6)
        block[154] = 0
        data += Data(block)
    }

    /// The archive with its end-of-archive blocks.
    var archive: Data { data + Data(count: 1024) }
}

private extension String {
    func leftPad(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

enum TestTools {
    /// Runs a program; returns (status, stdout, stderr).
    @discardableResult
    static func run(_ program: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inPipe = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : inPipe
        try process.run()
        if let input { inPipe.fileHandleForWriting.write(input); try inPipe.fileHandleForWriting.close() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    static func sha256(_ data: Data) throws -> String {
        let result = try run("/usr/bin/sha256sum", [], input: data)
        return String(result.stdout.prefix(64))
    }

    static func gzip(_ data: Data) throws -> Data { try compress(data, "/bin/gzip", ["-n"], ".gz") }
    static func zstd(_ data: Data) throws -> Data { try compress(data, "/usr/bin/zstd", ["-q", "--rm"], ".zst") }

    /// `data` through a compressor that replaces FILE with FILE`suffix`.
    static func compress(_ data: Data, _ program: String, _ options: [String], _ suffix: String) throws -> Data {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gz-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("layer")
        try data.write(to: file)
        let result = try run(program, options + [file.path])
        guard result.status == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: "\(program): \(result.stderr)"]) }
        return try Data(contentsOf: URL(fileURLWithPath: file.path + suffix))
    }
}

/// An OCI image layout directory written by the test.
struct OCILayoutBuilder {
    let directory: URL
    var manifests: [[String: Any]] = []

    init(_ directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("blobs/sha256"), withIntermediateDirectories: true)
        try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: directory.appendingPathComponent("oci-layout"))
    }

    /// Writes a blob; returns its descriptor fields.
    @discardableResult
    func blob(_ data: Data) throws -> (digest: String, size: Int) {
        let hex = try TestTools.sha256(data)
        try data.write(to: directory.appendingPathComponent("blobs/sha256/\(hex)"))
        return ("sha256:" + hex, data.count)
    }

    struct Layer {
        var tar: Data
        var gzip = true
        /// zstd instead of gzip (application/vnd.oci.image.layer.v1.tar+zstd).
        var zstd = false
        /// Overrides for hostile tests.
        var mediaType: String?
        var digest: String?
        var diffID: String?
    }

    /// Adds an image (config + manifest) to index.json; returns the manifest digest.
    @discardableResult
    mutating func image(_ layers: [Layer], config: [String: Any] = [:], name: String?, architecture: String = "amd64",
                        duplicateLayer: Bool = false) throws -> String {
        var descriptors: [[String: Any]] = []
        var diffIDs: [String] = []
        for layer in layers {
            let bytes = try layer.zstd ? TestTools.zstd(layer.tar) : layer.gzip ? TestTools.gzip(layer.tar) : layer.tar
            let (digest, size) = try blob(bytes)
            let plainDigest = try "sha256:" + TestTools.sha256(layer.tar)
            diffIDs.append(layer.diffID ?? plainDigest)
            let type = layer.zstd ? "application/vnd.oci.image.layer.v1.tar+zstd" : layer.gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar"
            descriptors.append(["mediaType": layer.mediaType ?? type,
                                "digest": layer.digest ?? digest, "size": size])
        }
        if duplicateLayer, let first = descriptors.first { descriptors.append(first); diffIDs.append(diffIDs[0]) }
        let configJSON: [String: Any] = ["architecture": architecture, "os": "linux", "created": "2026-11-30T00:00:00Z",
                                         "config": config, "rootfs": ["type": "layers", "diff_ids": diffIDs]]
        let configData = try JSONSerialization.data(withJSONObject: configJSON, options: [.sortedKeys])
        let (configDigest, configSize) = try blob(configData)
        let manifest: [String: Any] = ["schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "config": ["mediaType": "application/vnd.oci.image.config.v1+json", "digest": configDigest, "size": configSize],
                                       "layers": descriptors]
        let manifestData = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        let (manifestDigest, manifestSize) = try blob(manifestData)
        var entry: [String: Any] = ["mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest, "size": manifestSize]
        if let name { entry["annotations"] = ["org.opencontainers.image.ref.name": name] }
        manifests.append(entry)
        let index: [String: Any] = ["schemaVersion": 2, "manifests": manifests]
        try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys]).write(to: directory.appendingPathComponent("index.json"))
        return manifestDigest
    }
}

/// The images the tests share: a busybox base, a layer that deletes and hides things, a third on top.
enum SampleImage {
    /// Layer 1: /bin/busybox and its sh link, /etc with passwd and group, a file with an xattr, a
    /// hard link, a directory /data with two files, /gone to be deleted, /opaque with a file.
    static func base() throws -> TarBuilder {
        var tar = TarBuilder()
        tar.directory("bin")
        tar.file("bin/busybox", try Data(contentsOf: URL(fileURLWithPath: "/bin/busybox")), mode: 0o755)
        for applet in ["sh", "cat", "ls", "id", "pwd", "env", "stat", "sleep", "echo", "true"] { tar.symlink("bin/\(applet)", to: "busybox") }
        tar.directory("etc")
        tar.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
        tar.file("etc/group", "root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
        tar.directory("data")
        tar.file("data/keep", "kept\n", uid: 1000, gid: 1000)
        tar.file("data/xattr", "x\n", xattrs: [("user.tandem", "yes")])
        tar.hardLink("data/link", to: "data/keep")
        tar.file("data/mode", "m\n", mode: 0o4750)
        tar.file("gone", "to be deleted\n")
        tar.directory("opaque")
        tar.file("opaque/old", "hidden by the opaque marker\n")
        tar.directory("home/app", mode: 0o750, uid: 1000, gid: 1000)
        return tar
    }

    /// Layer 2: deletes /gone (whiteout), makes /opaque opaque with a new file, adds /data/new.
    static func changes() -> TarBuilder {
        var tar = TarBuilder()
        tar.file(".wh.gone", "")
        tar.directory("opaque")
        tar.file("opaque/.wh..wh..opq", "")
        tar.file("opaque/new", "new\n")
        tar.directory("data")
        tar.file("data/new", "layer 2\n")
        return tar
    }

    /// Layer 3 (another image's top): one file.
    static func top(_ text: String) -> TarBuilder {
        var tar = TarBuilder()
        tar.file("top", text)
        return tar
    }

    nonisolated(unsafe) static let config: [String: Any] = ["Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo default cmd"],
                                        "Env": ["PATH=/bin", "FROM_IMAGE=yes"], "WorkingDir": "/data", "User": "app", "StopSignal": "SIGUSR1"]

    /// A layout at `directory` with image `name` (base + changes) and, with `second`, another
    /// image sharing both base layers plus its own top.
    static func layout(at directory: URL, name: String = "sample:1", second: String? = nil) throws -> OCILayoutBuilder {
        var layout = try OCILayoutBuilder(directory)
        let base = OCILayoutBuilder.Layer(tar: try base().archive)
        let changes = OCILayoutBuilder.Layer(tar: changes().archive, gzip: false)
        try layout.image([base, changes], config: config, name: name)
        if let second { try layout.image([base, changes, .init(tar: top(second).archive)], config: config, name: second) }
        return layout
    }
}
