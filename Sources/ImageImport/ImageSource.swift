import CLinux
import HostOS
import Images
#if canImport(Glibc)
import Glibc
#endif

/// A descriptor (OCI image-spec descriptor.md): what a blob is, its digest and size.
struct Descriptor {
    var mediaType: String
    var digest: Digest
    var size: Int64
    var annotations: [(String, String)] = []
    var platform: (os: String, architecture: String)?

    init(_ json: JSON, what: String) throws(ImageError) {
        guard let digestText = json["digest"]?.string else { throw ImageError("\(what): no digest") }
        guard let digest = Digest(digestText) else { throw ImageError("\(what): digest \(digestText): not sha256: and 64 lowercase hex digits") }
        guard let size = json["size"]?.int64, size >= 0 else { throw ImageError("\(what) \(digestText): no size, or a negative one") }
        self.digest = digest
        self.size = size
        mediaType = json["mediaType"]?.string ?? ""
        for (key, value) in json["annotations"]?.members ?? [] { if let text = value.string { annotations.append((key, text)) } }
        if let platform = json["platform"], let os = platform["os"]?.string, let architecture = platform["architecture"]?.string {
            self.platform = (os, architecture)
        }
    }

    init(mediaType: String, digest: Digest, size: Int64) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
    }
}

/// The media types an import understands (OCI and Docker's v2 schema 2).
enum MediaType {
    static let ociIndex = "application/vnd.oci.image.index.v1+json"
    static let dockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
    static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    static let ociConfig = "application/vnd.oci.image.config.v1+json"
    static let dockerConfig = "application/vnd.docker.container.image.v1+json"

    /// A layer's compression from its media type; unknown and unsupported ones are errors.
    static func layerCompression(_ type: String) throws(ImageError) -> Compression {
        switch type {
        case "application/vnd.oci.image.layer.v1.tar", "application/vnd.oci.image.layer.nondistributable.v1.tar",
             "application/vnd.docker.image.rootfs.diff.tar":
            return .none
        case "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
             "application/vnd.docker.image.rootfs.diff.tar.gzip":
            return .gzip
        case "application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
            return .zstd
        case "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip":
            throw ImageError("media type \(type): a foreign layer (its bytes are not in the image)")
        default:
            throw ImageError("unknown layer media type \"\(type)\"")
        }
    }
}

/// One image as a source holds it: manifest, config and layers, each still to be verified
/// against its digest as it is read.
struct SourceImage {
    var manifest: (descriptor: Descriptor, bytes: [UInt8])?
    var config: (digest: Digest, bytes: [UInt8])
    var layers: [Descriptor]
    /// Names the source gives (OCI ref.name annotations, docker-archive RepoTags).
    var names: [String]
}

/// Where an import reads from: an OCI image layout directory, an oci-archive or a docker-archive
/// (tar files, read in place: each member is a range of the file).
final class ImageSource {
    enum Format: String { case ociLayout = "OCI image layout", ociArchive = "oci-archive", dockerArchive = "docker-archive" }
    let path: String
    private(set) var format: Format = .ociLayout
    /// An archive's regular members: name → (offset, size).
    private var members: [String: (offset: Int64, size: Int64)] = [:]
    private var archive: FileDescriptor?
    /// docker-archive: layer digests → member names.
    private var dockerLayers: [Digest: String] = [:]

    static let maximumMetadata = ImageStore.maximumMetadata

    /// `scratch`: a directory on the store's file system where a compressed archive (gzip or zstd,
    /// as `docker save | gzip` makes) is decompressed, into an unnamed file, before it is read.
    init(path: String, scratch: String) throws(ImageError) {
        self.path = path
        switch Files.kind(path) {
        case .missing: throw ImageError("\(path): does not exist")
        case .directory:
            guard Files.kind(path + "/oci-layout") == .regular, Files.kind(path + "/index.json") == .regular else {
                throw ImageError("\(path): a directory without oci-layout and index.json is not an OCI image layout")
            }
            format = .ociLayout
        case .regular:
            try indexArchive(scratch: scratch)
            if members["oci-layout"] != nil && members["index.json"] != nil {
                format = .ociArchive
            } else if members["manifest.json"] != nil {
                format = .dockerArchive
            } else {
                throw ImageError("\(path): a tar archive with neither index.json and oci-layout (oci-archive) nor manifest.json (docker-archive)")
            }
        case .other: throw ImageError("\(path): not a file or a directory")
        }
    }

    /// Reads the outer tar's headers once, keeping where each member's bytes are.
    private func indexArchive(scratch: String) throws(ImageError) {
        var file = try FileRange(path: path)
        var head = [UInt8](repeating: 0, count: 6)
        _ = pread(file.fd.rawValue, &head, 6, 0)
        if let format = Compression.unsupported(head) {
            throw ImageError("\(path): an archive compressed with \(format): decompress it first, or recompress it with gzip or zstd")
        }
        let compression = Compression.sniff(head)
        if compression != .none { file = try decompress(file, compression, scratch: scratch) }
        archive = file.fd
        let counter = CountingStream(file)
        let tar = TarReader(counter, name: path)
        while let entry = try tar.next() {
            guard entry.kind == .regular else { continue }
            guard let name = Self.memberName(entry.path) else { throw ImageError("\(path): member \(entry.name): a path with '..' or an absolute path") }
            members[name] = (counter.count, entry.size)
        }
    }

    /// The whole archive decompressed into an unnamed file in `scratch` (members are then read in
    /// place, as from an uncompressed archive), watched by a `SpaceGuard`.
    private func decompress(_ file: FileRange, _ compression: Compression, scratch: String) throws(ImageError) -> FileRange {
        let fd = Glibc.open(scratch, CLINUX_O_TMPFILE | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageError(SystemError("open (O_TMPFILE)", scratch)) }
        let temporary = FileDescriptor(adopting: fd, label: "\(path), decompressed")
        var space = try SpaceGuard(directory: fd, name: scratch)
        let stream = try DecompressingStream(file, compression, name: "\(path): \(compression.rawValue)")
        let chunk = ByteBuffer(1 << 17)
        var size: Int64 = 0
        while true {
            let got = try stream.read(into: chunk.all)
            if got == 0 { break }
            try space.write(fd, chunk[0..<got], what: "\(self.path), decompressed into \(scratch)")
            size += Int64(got)
        }
        return FileRange(fd: temporary, name: path, offset: 0, length: size)
    }

    /// A member's name as looked up: "./" and leading slashes dropped; nil for ".." anywhere.
    static func memberName(_ bytes: [UInt8]) -> String? {
        var parts: [Substring] = []
        for part in String(decoding: bytes, as: UTF8.self).split(separator: "/") where part != "." {
            if part == ".." { return nil }
            parts.append(part)
        }
        return parts.joined(separator: "/")
    }

    /// A stream over the file at `relative` (a member, or a file under the layout directory).
    func open(_ relative: String) throws(ImageError) -> (stream: FileRange, size: Int64) {
        guard let name = Self.memberName(Array(relative.utf8)), !name.isEmpty, !relative.hasPrefix("/") else {
            throw ImageError("\(path): \(relative): a path with '..' or an absolute path")
        }
        if format == .ociLayout {
            let file = path + "/" + name
            guard Files.kind(file) == .regular else { throw ImageError("\(path): \(name): missing") }
            let stream = try FileRange(path: file)
            var info = stat()
            fstat(stream.fd.rawValue, &info)
            return (stream, Int64(info.st_size))
        }
        guard let member = members[name], let archive else { throw ImageError("\(path): \(name): missing from the archive") }
        return (FileRange(fd: archive, name: "\(path):\(name)", offset: member.offset, length: member.size), member.size)
    }

    func read(_ relative: String, limit: Int = ImageSource.maximumMetadata) throws(ImageError) -> [UInt8] {
        let (stream, size) = try open(relative)
        guard size <= Int64(limit) else { throw ImageError("\(path): \(relative): \(size) bytes, more than the \(limit) a manifest or config may have") }
        return try stream.readAll(limit: limit, what: "\(path): \(relative)")
    }

    /// A blob of the image: verified against `descriptor` (digest and size) as it is read by
    /// the caller (layers), or here (small blobs: `readBlob`).
    func openBlob(_ descriptor: Descriptor) throws(ImageError) -> FileRange {
        if format == .dockerArchive, let member = dockerLayers[descriptor.digest] { return try open(member).stream }
        return try open("blobs/sha256/" + descriptor.digest.hex).stream
    }

    func readBlob(_ descriptor: Descriptor, what: String) throws(ImageError) -> [UInt8] {
        guard descriptor.size <= Int64(Self.maximumMetadata) else {
            throw ImageError("\(what) \(descriptor.digest): \(descriptor.size) bytes, more than the \(Self.maximumMetadata) a manifest or config may have")
        }
        let bytes: [UInt8]
        do { bytes = try openBlob(descriptor).readAll(limit: Self.maximumMetadata, what: "\(what) \(descriptor.digest)") } catch {
            throw ImageError("\(what) \(descriptor.digest): \(error.description)")
        }
        guard Int64(bytes.count) == descriptor.size else { throw ImageError("\(what) \(descriptor.digest): \(bytes.count) bytes, the descriptor says \(descriptor.size)") }
        let actual = Digest.of(bytes)
        guard actual == descriptor.digest else { throw ImageError("\(what) \(descriptor.digest): does not match its digest (its bytes hash to \(actual))") }
        return bytes
    }

    // MARK: - The image in it

    /// The one image the source holds (or the one named `reference` among several).
    func image(reference: String?) throws(ImageError) -> SourceImage {
        if format == .dockerArchive { return try dockerImage(reference: reference) }
        let indexBytes = try read("index.json")
        let index: JSON
        do { index = try JSON.parse(String(decoding: indexBytes, as: UTF8.self)) } catch { throw ImageError("\(path): index.json: \(error.description)") }
        guard let entries = index["manifests"]?.array else { throw ImageError("\(path): index.json: no manifests array") }
        var candidates: [Descriptor] = []
        for (number, entry) in entries.enumerated() { candidates.append(try Descriptor(entry, what: "\(path): index.json manifests[\(number)]")) }
        if let reference {
            candidates = candidates.filter { descriptor in
                descriptor.annotations.contains { $0.0 == "org.opencontainers.image.ref.name" && ($0.1 == reference || Self.tag(of: $0.1) == reference) }
            }
            guard !candidates.isEmpty else { throw ImageError("\(path): no image named \(reference) in index.json") }
        }
        guard candidates.count == 1 else {
            let names = candidates.flatMap { $0.annotations.filter { $0.0 == "org.opencontainers.image.ref.name" }.map(\.1) }
            throw ImageError("\(path): holds \(candidates.count) images (\(names.joined(separator: ", "))): name one as PATH:REF")
        }
        var descriptor = candidates[0]
        let names = descriptor.annotations.filter { $0.0 == "org.opencontainers.image.ref.name" }.map(\.1)
        var bytes = try readBlob(descriptor, what: "\(path): manifest")
        // An index (multi-platform): this host's platform.
        if descriptor.mediaType == MediaType.ociIndex || descriptor.mediaType == MediaType.dockerList {
            let nested: JSON
            do { nested = try JSON.parse(String(decoding: bytes, as: UTF8.self)) } catch { throw ImageError("\(path): index \(descriptor.digest): \(error.description)") }
            var platforms: [Descriptor] = []
            for (number, entry) in (nested["manifests"]?.array ?? []).enumerated() {
                platforms.append(try Descriptor(entry, what: "\(path): index \(descriptor.digest) manifests[\(number)]"))
            }
            guard let chosen = platforms.first(where: { $0.platform?.os == "linux" && $0.platform?.architecture == Self.hostArchitecture }) else {
                throw ImageError("\(path): index \(descriptor.digest): no image for linux/\(Self.hostArchitecture)")
            }
            descriptor = chosen
            bytes = try readBlob(descriptor, what: "\(path): manifest")
        }
        return try manifestImage(descriptor, bytes, names: names)
    }

    /// The tag part of a reference ("name:tag" → "tag"; "tag" → "tag").
    static func tag(of reference: String) -> String {
        if let colon = reference.lastIndex(of: ":"), !reference[colon...].contains("/") { return String(reference[reference.index(after: colon)...]) }
        return reference
    }

    static var hostArchitecture: String { ImageStore.hostArchitecture }

    private func manifestImage(_ descriptor: Descriptor, _ bytes: [UInt8], names: [String]) throws(ImageError) -> SourceImage {
        let what = "\(path): manifest \(descriptor.digest)"
        let manifest: JSON
        do { manifest = try JSON.parse(String(decoding: bytes, as: UTF8.self)) } catch { throw ImageError("\(what): \(error.description)") }
        let type = manifest["mediaType"]?.string ?? descriptor.mediaType
        guard type == MediaType.ociManifest || type == MediaType.dockerManifest || (type.isEmpty && manifest["config"] != nil) else {
            throw ImageError("\(what): media type \"\(type)\" is not an image manifest")
        }
        guard manifest["schemaVersion"]?.int64 == 2 else { throw ImageError("\(what): schemaVersion is not 2") }
        guard let configJSON = manifest["config"] else { throw ImageError("\(what): no config") }
        let configDescriptor = try Descriptor(configJSON, what: "\(what) config")
        guard [MediaType.ociConfig, MediaType.dockerConfig].contains(configDescriptor.mediaType) else {
            throw ImageError("\(what): config media type \"\(configDescriptor.mediaType)\" is not an image config")
        }
        let config = try readBlob(configDescriptor, what: "\(path): config")
        var layers: [Descriptor] = []
        for (number, entry) in (manifest["layers"]?.array ?? []).enumerated() {
            let layer = try Descriptor(entry, what: "\(what) layers[\(number)]")
            do { _ = try MediaType.layerCompression(layer.mediaType) } catch { throw error.within("\(what): layer \(layer.digest)") }
            if layers.contains(where: { $0.digest == layer.digest }) {
                throw ImageError("\(what): layer \(layer.digest) is listed twice")
            }
            layers.append(layer)
        }
        return SourceImage(manifest: (descriptor, bytes), config: (configDescriptor.digest, config), layers: layers, names: names)
    }

    /// docker-archive (`docker save`): manifest.json lists Config, RepoTags and Layers by member
    /// name. There are no layer digests to check against but the config's diff_ids, which the
    /// import checks every layer's uncompressed bytes against.
    private func dockerImage(reference: String?) throws(ImageError) -> SourceImage {
        let text = try read("manifest.json")
        let list: JSON
        do { list = try JSON.parse(String(decoding: text, as: UTF8.self)) } catch { throw ImageError("\(path): manifest.json: \(error.description)") }
        var entries = list.array ?? []
        if let reference { entries = entries.filter { ($0["RepoTags"]?.strings ?? []).contains(reference) } }
        guard entries.count == 1, let entry = entries.first else {
            throw ImageError("\(path): manifest.json holds \(entries.count) images\(reference.map { " named \($0)" } ?? ""): name one as PATH:REF")
        }
        guard let configName = entry["Config"]?.string, let layerNames = entry["Layers"]?.strings else {
            throw ImageError("\(path): manifest.json: an entry without Config or Layers")
        }
        let config = try read(configName)
        let configDigest = Digest.of(config)
        // Docker names the config by its digest: a name that says otherwise is a tampered archive.
        let base = String(configName.split(separator: "/").last ?? "")
        let stem = base.hasSuffix(".json") ? String(base.dropLast(5)) : base
        if let named = Digest(hex: stem), named != configDigest {
            throw ImageError("\(path): config \(configName): does not match its digest (its bytes hash to \(configDigest))")
        }
        var layers: [Descriptor] = []
        for name in layerNames {
            let (stream, size) = try open(name)
            let hash = HashingStream(stream)
            try hash.drain()
            let digest = hash.finish()
            var head = [UInt8](repeating: 0, count: 4)
            _ = pread(stream.fd.rawValue, &head, 4, off_t(members[Self.memberName(Array(name.utf8)) ?? ""]?.offset ?? 0))
            let type = switch Compression.sniff(head) {
            case .gzip: "application/vnd.docker.image.rootfs.diff.tar.gzip"
            case .zstd: "application/vnd.oci.image.layer.v1.tar+zstd"
            case .none: "application/vnd.docker.image.rootfs.diff.tar"
            }
            if layers.contains(where: { $0.digest == digest }) { throw ImageError("\(path): layer \(name) is listed twice") }
            layers.append(Descriptor(mediaType: type, digest: digest, size: size))
            dockerLayers[digest] = name
        }
        return SourceImage(manifest: nil, config: (configDigest, config), layers: layers, names: entry["RepoTags"]?.strings ?? [])
    }
}

/// Counts the bytes read through it (an archive member's offset is the count after its header).
final class CountingStream: ByteStream {
    let source: any ByteStream
    private(set) var count: Int64 = 0
    init(_ source: any ByteStream) { self.source = source }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(ImageError) -> Int {
        let got = try source.read(into: buffer)
        count += Int64(got)
        return got
    }
}
