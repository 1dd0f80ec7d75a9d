import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// An image in the store: its id (the config's digest, as Docker and podman use), the manifest
/// it came with, its names, and its layers bottom first.
public struct ImageRecord: Sendable {
    public struct Layer: Sendable, Equatable {
        package init(diffID: Digest, blob: Digest, mediaType: String, size: Int64) {
            self.diffID = diffID
            self.blob = blob
            self.mediaType = mediaType
            self.size = size
        }
        public var diffID: Digest
        /// The blob it came as (compressed or not), its media type and size.
        public var blob: Digest
        public var mediaType: String
        public var size: Int64
    }
    public var id: Digest
    public var manifest: Digest?
    public var names: [String]
    /// CLOCK_REALTIME ns of the import.
    public var imported: UInt64
    /// What it was imported from (format).
    public var source: String
    public var layers: [Layer]

    package func json() -> JSON {
        .object([
            ("id", .string(id.description)), ("manifest", manifest.map { .string($0.description) } ?? .null),
            ("names", .array(names.map(JSON.string))), ("imported", .uint(imported)), ("source", .string(source)),
            ("layers", .array(layers.map { .object([("diffID", .string($0.diffID.description)), ("blob", .string($0.blob.description)),
                                                    ("mediaType", .string($0.mediaType)), ("size", .int($0.size))]) })),
        ])
    }

    package init(id: Digest, manifest: Digest?, names: [String], imported: UInt64, source: String, layers: [Layer]) {
        self.id = id
        self.manifest = manifest
        self.names = names
        self.imported = imported
        self.source = source
        self.layers = layers
    }

    init(_ json: JSON, what: String) throws(ImageError) {
        guard let id = json["id"]?.string.flatMap({ Digest($0) }) else { throw ImageError("\(what): no id") }
        self.id = id
        manifest = json["manifest"]?.string.flatMap({ Digest($0) })
        names = json["names"]?.strings ?? []
        imported = UInt64(json["imported"]?.int64 ?? 0)
        source = json["source"]?.string ?? ""
        layers = []
        for item in json["layers"]?.array ?? [] {
            guard let diffID = item["diffID"]?.string.flatMap({ Digest($0) }), let blob = item["blob"]?.string.flatMap({ Digest($0) }) else {
                throw ImageError("\(what): a layer without diffID or blob")
            }
            layers.append(Layer(diffID: diffID, blob: blob, mediaType: item["mediaType"]?.string ?? "", size: item["size"]?.int64 ?? 0))
        }
    }

    /// The first name, or <none> (an image whose names moved to another), as docker images shows it.
    public var displayName: String { names.first ?? "<none>" }
}

/// What the store keeps about one unpacked layer.
public struct LayerRecord: Sendable {
    public var diffID: Digest
    public var usage: DiskUsage
    public var entries: Int
    public var contentBytes: Int64
    /// Whether its opaque directories carry user.overlay.opaque beside trusted.overlay.opaque, as
    /// an overlay mounted in a user namespace (`--userns`) reads them. Layers imported before
    /// Tandem wrote both lack it.
    public var userOverlayXattrs: Bool

    package func json() -> JSON {
        .object([("diffID", .string(diffID.description)), ("apparent", .int(usage.apparent)), ("allocated", .int(usage.allocated)),
                 ("inodes", .int(Int64(usage.inodes))), ("entries", .int(Int64(entries))), ("contentBytes", .int(contentBytes)),
                 ("userOverlayXattrs", .bool(userOverlayXattrs))])
    }

    package init(diffID: Digest, usage: DiskUsage, entries: Int, contentBytes: Int64, userOverlayXattrs: Bool = true) {
        self.diffID = diffID
        self.usage = usage
        self.entries = entries
        self.contentBytes = contentBytes
        self.userOverlayXattrs = userOverlayXattrs
    }

    init?(_ json: JSON) {
        guard let diffID = json["diffID"]?.string.flatMap({ Digest($0) }) else { return nil }
        self.diffID = diffID
        usage = DiskUsage(apparent: json["apparent"]?.int64 ?? 0, allocated: json["allocated"]?.int64 ?? 0, inodes: Int(json["inodes"]?.int64 ?? 0))
        entries = Int(json["entries"]?.int64 ?? 0)
        contentBytes = json["contentBytes"]?.int64 ?? 0
        userOverlayXattrs = json["userOverlayXattrs"]?.bool ?? false
    }
}

/// The content-addressed image store (default /var/lib/tandem):
///
///     blobs/sha256/HEX        manifests and configs, by digest
///     layers/HEX/diff/        each layer unpacked once, by its uncompressed digest (diff ID):
///     layers/HEX/layer.json   two images with a layer in common share its directory
///     images/HEX.json         one per image, by config digest (its id): names, manifest, layers
///     vm/KEY.ext4, KEY.layers VM root disks made from layers (libvirt guests), shared by runs
///     tmp/                    imports in progress (cleared by the next writer)
///     idmap                   a rootless store's id ranges (see `IDRange`); none for root's
///     lock                    writers (import, rm, prune) hold it exclusively
///
/// Nothing is visible until it is whole: a layer is unpacked under tmp/ and renamed into
/// layers/ once its digests check out; an image's record is written (by rename) after all its
/// layers and blobs. An import that fails or is killed leaves nothing `ls` shows.
public final class ImageStore {
    public let root: String

    /// The most bytes a manifest, index or config may have (containerd's limit too).
    public static let maximumMetadata = 4 << 20

    public init(root: String = ImageStore.defaultRoot) {
        self.root = root
    }

    /// /var/lib/tandem for root; for another user $XDG_DATA_HOME/tandem (or ~/.local/share/tandem).
    public static var defaultRoot: String {
        if geteuid() == 0 { return "/var/lib/tandem" }
        if let data = getenv("XDG_DATA_HOME").map({ String(cString: $0) }), data.hasPrefix("/") { return data + "/tandem" }
        if let home = getenv("HOME").map({ String(cString: $0) }), home.hasPrefix("/") { return home + "/.local/share/tandem" }
        return "/tmp/tandem-\(geteuid())"
    }

    /// This host's architecture as OCI names it (GOARCH style).
    public static var hostArchitecture: String {
        #if arch(x86_64)
        "amd64"
        #elseif arch(arm64)
        "arm64"
        #else
        "unknown"
        #endif
    }

    package var blobsDirectory: String { root + "/blobs/sha256" }
    package var layersDirectory: String { root + "/layers" }
    package var imagesDirectory: String { root + "/images" }
    package var temporaryDirectory: String { root + "/tmp" }
    /// VM root disks made from images' layers (see `vmDisk`).
    package var vmDirectory: String { root + "/vm" }

    /// Where a layer's files are (the overlay lower directory).
    public func layerPath(_ diffID: Digest) -> String { layersDirectory + "/" + diffID.hex + "/diff" }

    // MARK: - Locking

    /// Runs `body` holding the store's lock (exclusively); what a killed writer left in tmp/ is
    /// cleared first (nobody else can be writing there).
    package func writing<T>(_ body: () throws(ImageError) -> T) throws(ImageError) -> T {
        try prepare()
        let fd = open(root + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ImageError(SystemError("open", root + "/lock")) }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw ImageError(SystemError("flock", root + "/lock")) }
        try checkIDMapping()
        let temporary = Self.openDirectory(temporaryDirectory)
        for name in Files.list(temporaryDirectory) { try? FileTree.remove(temporary, Array(name.utf8)) }
        close(temporary)
        return try body()
    }

    package func prepare() throws(ImageError) {
        // The store path becomes part of overlay mount options: ',' and ':' would split them.
        guard root.hasPrefix("/"), !root.contains(","), !root.contains(":") else {
            throw ImageError("--store \(root): must be an absolute path without ',' or ':' (it becomes part of overlay's mount options)")
        }
        for directory in [root, root + "/blobs", blobsDirectory, layersDirectory, imagesDirectory, temporaryDirectory, vmDirectory] {
            if mkdir(directory, directory == temporaryDirectory ? 0o700 : 0o755) != 0 && errno != EEXIST {
                throw ImageError(SystemError("mkdir", directory))
            }
        }
    }

    package static func openDirectory(_ path: String) -> Int32 { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }

    // MARK: - Records

    package static func writeAtomically(_ path: String, _ bytes: [UInt8]) throws(ImageError) {
        let temporary = path + ".new." + String(getpid())
        do { try Files.write(temporary, bytes, mode: 0o644) } catch { throw ImageError(error) }
        guard rename(temporary, path) == 0 else {
            let error = SystemError("rename", temporary)
            unlink(temporary)
            throw ImageError(error)
        }
    }


    package func save(_ record: ImageRecord) throws(ImageError) {
        try Self.writeAtomically(imagesDirectory + "/" + record.id.hex + ".json", Array(record.json().serialized(indent: 2).utf8))
    }

    package func load(_ id: Digest) throws(ImageError) -> ImageRecord {
        let path = imagesDirectory + "/" + id.hex + ".json"
        guard let text = Files.readText(path) else { throw ImageError("image \(id.short): not in the store \(root)") }
        do { return try ImageRecord(JSON.parse(text), what: path) } catch let error as JSONParseError {
            throw ImageError("\(path): \(error.description)")
        } catch let error as ImageError { throw error } catch { throw ImageError("\(path): \(error)") }
    }

    /// Every image, newest import first.
    public func list() throws(ImageError) -> [ImageRecord] {
        var records: [ImageRecord] = []
        for name in Files.list(imagesDirectory) where name.hasSuffix(".json") {
            guard let id = Digest(hex: String(name.dropLast(5))) else { continue }
            records.append(try load(id))
        }
        return records.sorted { $0.imported > $1.imported }
    }

    /// The image's config (its blob, kept in the store).
    public func config(of record: ImageRecord) throws(ImageError) -> ImageConfig {
        let path = blobsDirectory + "/" + record.id.hex
        let bytes: [UInt8]
        do { bytes = try Files.read(path, limit: ImageStore.maximumMetadata) } catch { throw ImageError(error) }
        return try ImageConfig(bytes, what: "image \(record.displayName): config")
    }

    /// The layer's record (sizes), if it is in the store.
    public func layer(_ diffID: Digest) -> LayerRecord? {
        Files.readText(layersDirectory + "/" + diffID.hex + "/layer.json").flatMap { try? JSON.parse($0) }.flatMap(LayerRecord.init)
    }

    /// An image by name (NAME[:TAG], TAG defaulting to latest), by id (sha256:HEX), or by an
    /// unambiguous prefix of its id's hex digits.
    public func find(_ reference: String) throws(ImageError) -> ImageRecord {
        let records = try list()
        if let name = try? Self.normalize(name: reference), let match = records.first(where: { $0.names.contains(name) }) { return match }
        var prefix = reference
        if prefix.hasPrefix("sha256:") { prefix = String(prefix.dropFirst(7)) }
        if !prefix.isEmpty, prefix.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) {
            let matches = records.filter { $0.id.hex.hasPrefix(prefix) }
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 { throw ImageError("image \(reference): ambiguous (\(matches.count) images have ids starting so)") }
        }
        throw ImageError("image \(reference): not in the store \(root) (tandem image ls lists what is)")
    }

    /// NAME[:TAG] as stored: TAG defaults to latest. Names are Docker's reference grammar, simplified:
    /// lowercase letters, digits and . _ - / (a registry host may have a :PORT); tags up to 128 of
    /// A-Z a-z 0-9 _ . - not starting with . or -.
    public static func normalize(name text: String) throws(ImageError) -> String {
        var name = text, tag = "latest"
        if let colon = text.lastIndex(of: ":"), !text[colon...].contains("/") {
            name = String(text[..<colon])
            tag = String(text[text.index(after: colon)...])
        }
        let nameOK = !name.isEmpty && name.utf8.count <= 255 && name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || "._-/:".unicodeScalars.contains($0)
        } && !name.hasPrefix("/") && !name.hasSuffix("/") && !name.contains("//")
        let tagOK = !tag.isEmpty && tag.utf8.count <= 128 && !tag.hasPrefix(".") && !tag.hasPrefix("-") && tag.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0)
        }
        // Docker's familiar form: docker.io/library/debian is debian (skopeo writes the long one).
        for prefix in ["docker.io/library/", "docker.io/"] where name.hasPrefix(prefix) && name.count > prefix.count {
            name = String(name.dropFirst(prefix.count))
            break
        }
        guard nameOK, tagOK else {
            throw ImageError("image name \(text): must be NAME[:TAG] (NAME: lowercase letters, digits, . _ - /; TAG: letters, digits, . _ -, up to 128)")
        }
        return name + ":" + tag
    }

    // MARK: - In use

    /// Marks image `id` in use for as long as this process lives (a shared flock on
    /// images/HEX.lock, close-on-exec: the run's tandem process or a detached container's monitor
    /// holds it, the container's own process does not). `rm` and `prune` keep an image someone
    /// holds, whichever backend runs it.
    ///
    /// Use `findAndHold`: between a lookup and a hold, `rm` could remove the image.
    func holdInUse(_ id: Digest) {
        let fd = open(imagesDirectory + "/" + id.hex + ".lock", O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        if fd >= 0 { flock(fd, LOCK_SH) }  // kept open on purpose: released when the process ends
    }

    /// `find(reference)` and `holdInUse` of what it found, with `rm` and `prune` kept out in
    /// between: they take users.lock exclusively around their check and unlink of a record, a
    /// run takes it shared around its lookup and hold (an import, which only adds, never takes it,
    /// so a run does not wait for one). Without the lock a `rm` could delete the image after the
    /// run found it and before it held it; the run would then fail at its overlay mount.
    public func findAndHold(_ reference: String) throws(ImageError) -> ImageRecord {
        let lock = open(root + "/users.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        // A store this user cannot write (another user's): nobody can rm from it as this user either.
        if lock >= 0 { flock(lock, LOCK_SH) }
        defer { if lock >= 0 { close(lock) } }
        let record = try find(reference)
        holdInUse(record.id)
        return record
    }

    /// Runs `body` with users.lock held exclusively (see `findAndHold`).
    private func excludingUsers<T>(_ body: () throws(ImageError) -> T) throws(ImageError) -> T {
        let lock = open(root + "/users.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw ImageError(SystemError("open", root + "/users.lock")) }
        defer { close(lock) }
        guard flock(lock, LOCK_EX) == 0 else { throw ImageError(SystemError("flock", root + "/users.lock")) }
        return try body()
    }

    /// Whether a live process holds image `id` (see `holdInUse`).
    public func isHeld(_ id: Digest) -> Bool {
        let fd = open(imagesDirectory + "/" + id.hex + ".lock", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    // MARK: - Removal

    /// `rm REF`: a name is untagged (the image goes with its last name); an id removes the image
    /// unless it has several names (`force` removes it anyway). An image in use — `inUse` says so
    /// (a container record naming it), or a live process holds it (`holdInUse`) — is kept, as
    /// Docker keeps it. Layers and blobs no other
    /// image uses go too. Returns what was done, a line each.
    public func remove(_ reference: String, force: Bool = false, inUse: (Digest) -> Bool) throws(ImageError) -> [String] {
        try writing { () throws(ImageError) -> [String] in
            var record = try find(reference)
            var said: [String] = []
            let byName = (try? Self.normalize(name: reference)).map { record.names.contains($0) } ?? false
            if byName {
                let name = try Self.normalize(name: reference)
                if record.names.count > 1 {
                    record.names.removeAll { $0 == name }
                    try save(record)
                    return ["Untagged: \(name)"]
                }
                said.append("Untagged: \(name)")
            } else if record.names.count > 1 && !force {
                throw ImageError("image \(reference): has \(record.names.count) names (\(record.names.joined(separator: ", "))): remove them by name, or use --force")
            }
            try excludingUsers { () throws(ImageError) in
                if inUse(record.id) || isHeld(record.id) {
                    throw ImageError("image \(reference): a container or VM runs from it (stop it first)")
                }
                try unlinkRecord(record.id)
            }
            said.append("Deleted: \(record.id)")
            said += try collectGarbage()
            return said
        }
    }

    /// `prune`: images without a name (dangling, as docker image prune removes), unless a
    /// container runs from them, then layers and blobs no image uses. Returns what went.
    public func prune(inUse: (Digest) -> Bool) throws(ImageError) -> [String] {
        try writing { () throws(ImageError) -> [String] in
            var said: [String] = []
            try excludingUsers { () throws(ImageError) in
                for record in try list() where record.names.isEmpty && !inUse(record.id) && !isHeld(record.id) {
                    try unlinkRecord(record.id)
                    said.append("Deleted: \(record.id)")
                }
            }
            return said + (try collectGarbage())
        }
    }

    private func unlinkRecord(_ id: Digest) throws(ImageError) {
        guard unlink(imagesDirectory + "/" + id.hex + ".json") == 0 else { throw ImageError(SystemError("unlink", id.description)) }
        unlink(imagesDirectory + "/" + id.hex + ".lock")
    }

    /// Removes layers and blobs that no image refers to (under the lock).
    private func collectGarbage() throws(ImageError) -> [String] {
        let records = try list()
        let layers = Set(records.flatMap { $0.layers.map(\.diffID) })
        let blobs = Set(records.flatMap { [$0.id] + ($0.manifest.map { [$0] } ?? []) })
        var said: [String] = []
        let layersFD = Self.openDirectory(layersDirectory)
        defer { close(layersFD) }
        for name in Files.list(layersDirectory) {
            guard let digest = Digest(hex: name), !layers.contains(digest) else { continue }
            try FileTree.remove(layersFD, Array(name.utf8))
            said.append("Deleted layer: \(digest)")
        }
        for name in Files.list(blobsDirectory) {
            guard let digest = Digest(hex: name), !blobs.contains(digest) else { continue }
            unlink(blobsDirectory + "/" + name)
        }
        // A VM disk goes with the last image whose layers it holds.
        let stacks = Set(records.map { Self.layerList($0.layers.map(\.diffID)) })
        for disk in vmDisks() where !stacks.contains(disk.layers) {
            unlink(disk.path)
            unlink(disk.path.dropLast(".ext4".count) + ".layers")
            said.append("Deleted VM disk: \(disk.path)")
        }
        return said
    }

    // MARK: - Rootless stores

    /// One line of a user namespace's uid_map or gid_map: ids from `containerID` are host ids
    /// from `hostID`, `size` of them.
    public struct IDRange: Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32
    }

    /// A rootless store is written from a user namespace (`unshare --user --map-root-user
    /// --map-auto`: uid 0 is the user, 1… its /etc/subuid range), so its files are owned by
    /// those host ids; a container of its images must map the same ranges to see its owners.
    /// The first import from a namespace records them (`idmap`); later writers must match.
    public var idMapPath: String { root + "/idmap" }

    /// The ranges a rootless store was written with (nil: root's store, owners as they are).
    public func idMapping() -> (uid: [IDRange], gid: [IDRange])? {
        guard let text = Files.readText(idMapPath) else { return nil }
        var uid: [IDRange] = [], gid: [IDRange] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 4, let a = UInt32(fields[1]), let b = UInt32(fields[2]), let c = UInt32(fields[3]) else { continue }
            if fields[0] == "uid" { uid.append(IDRange(containerID: a, hostID: b, size: c)) }
            if fields[0] == "gid" { gid.append(IDRange(containerID: a, hostID: b, size: c)) }
        }
        return uid.isEmpty || gid.isEmpty ? nil : (uid, gid)
    }

    /// This process's user namespace's ranges as `idmap` holds them, or nil in the initial one.
    static func currentIDMapText() -> String? {
        guard !ProcessInfoLite.inInitialUserNamespace else { return nil }
        var text = ""
        for kind in ["uid", "gid"] {
            for line in (Files.readText("/proc/self/\(kind)_map") ?? "").split(separator: "\n") {
                text += kind + " " + line.split(separator: " ").joined(separator: " ") + "\n"
            }
        }
        return text
    }

    /// A writer's check (under the lock): a rootless store takes writes from the same ranges only;
    /// root's store none from a namespace (its files would belong to the namespace's ids).
    package func checkIDMapping() throws(ImageError) {
        let recorded = Files.readText(idMapPath)
        let current = Self.currentIDMapText()
        switch (recorded, current) {
        case (nil, nil): return
        case (nil, let current?):
            // Empty store or not: a store with layers and no idmap is root's.
            guard Files.list(layersDirectory).isEmpty else {
                throw ImageError("store \(root): written by root (no idmap); a rootless writer would mix owners into it: use a store of your own")
            }
            do { try Self.writeAtomically(idMapPath, Array(current.utf8)) }
        case (_?, nil):
            throw ImageError("store \(root): a rootless store (its files belong to the id ranges in \(idMapPath)): write to it as its user, whose tandem runs in those ranges")
        case (let recorded?, let current?):
            guard recorded == current else {
                throw ImageError("store \(root): made with the id ranges in \(idMapPath), not this namespace's (\(current.split(separator: "\n").joined(separator: "; "))): /etc/subuid or /etc/subgid changed?")
            }
        }
    }

    // MARK: - VM disks

    /// A VM root disk made from layers: `vm/KEY.ext4`, the image's files as its containers see them
    /// plus what the guest needs to run them (the caller's KEY says which version of that), with
    /// `vm/KEY.layers` listing the layers (diff IDs, bottom first, a line each). Runs attach it
    /// read-only under a copy-on-write overlay of their own. It goes with the last image that has
    /// those layers (`rm`, `prune`), and a disk for the same layers under another KEY is replaced.
    public struct VMDisk: Sendable {
        public var path: String
        public var layers: String
    }

    /// The disk for `layers` under `key`, made by `make(temporaryPath)` when missing (under the
    /// store's lock: two runs never make it twice; written in tmp/ and renamed in, so a killed
    /// maker leaves nothing a run would take for a disk). Returns its path and whether it was made.
    public func vmDisk(layers: [Digest], key: String, make: (String) throws(ImageError) -> Void) throws(ImageError) -> (path: String, made: Bool) {
        guard !key.isEmpty, key.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw ImageError("VM disk key \(key): not lowercase hex")
        }
        let path = vmDirectory + "/" + key + ".ext4"
        if Files.kind(path) == .regular { return (path, false) }
        return try writing { () throws(ImageError) -> (path: String, made: Bool) in
            if Files.kind(path) == .regular { return (path, false) }
            let list = Self.layerList(layers)
            let temporary = temporaryDirectory + "/" + key + ".ext4"
            do throws(ImageError) { try make(temporary) } catch {
                unlink(temporary)
                throw error
            }
            do throws(SystemError) { try Files.write(vmDirectory + "/" + key + ".layers", Array(list.utf8), mode: 0o644) } catch { throw ImageError(error) }
            guard chmod(temporary, 0o644) == 0, rename(temporary, path) == 0 else { throw ImageError(SystemError("rename", temporary)) }
            for disk in vmDisks() where disk.layers == list && disk.path != path {
                unlink(disk.path)
                unlink(disk.path.dropLast(".ext4".count) + ".layers")
            }
            return (path, true)
        }
    }

    /// The VM disks in the store, with the layers each holds.
    public func vmDisks() -> [VMDisk] {
        Files.list(vmDirectory).filter { $0.hasSuffix(".ext4") }.map { name in
            let path = vmDirectory + "/" + name
            return VMDisk(path: path, layers: Files.readText(path.dropLast(".ext4".count) + ".layers") ?? "")
        }
    }

    /// The VM disk made from exactly `layers`, if there is one.
    public func vmDisk(for layers: [Digest]) -> VMDisk? {
        let list = Self.layerList(layers)
        return vmDisks().first { $0.layers == list }
    }

    static func layerList(_ layers: [Digest]) -> String { layers.map { $0.description + "\n" }.joined() }

    // MARK: - Disk use

    /// `df`: every layer's size and which images use it.
    public struct Usage: Sendable {
        public struct Image: Sendable { public var record: ImageRecord; public var size: Int64; public var shared: Int64; public var unique: Int64 }
        public struct Layer: Sendable { public var diffID: Digest; public var size: Int64; public var images: Int }
        public var images: [Image]
        public var layers: [Layer]
        /// Bytes the layers take on disk, each once (allocated).
        public var layersOnDisk: Int64
        /// What the images would take if each had its own copy of every layer.
        public var unshared: Int64
        public var blobs: Int64
        /// VM root disks (`vmDisk`): allocated bytes, and how many.
        public var vmDisks: Int64 = 0
        public var vmDiskCount = 0
    }

    public func usage() throws(ImageError) -> Usage {
        let records = try list()
        var users: [Digest: Int] = [:]
        for record in records { for diffID in Set(record.layers.map(\.diffID)) { users[diffID, default: 0] += 1 } }
        var sizes: [Digest: Int64] = [:]
        for diffID in users.keys { sizes[diffID] = layer(diffID)?.usage.allocated ?? 0 }
        var images: [Usage.Image] = []
        for record in records {
            let own = Set(record.layers.map(\.diffID))
            let size = own.reduce(Int64(0)) { $0 + (sizes[$1] ?? 0) }
            let shared = own.filter { (users[$0] ?? 0) > 1 }.reduce(Int64(0)) { $0 + (sizes[$1] ?? 0) }
            images.append(.init(record: record, size: size, shared: shared, unique: size - shared))
        }
        let layers = users.map { Usage.Layer(diffID: $0.key, size: sizes[$0.key] ?? 0, images: $0.value) }.sorted { $0.size > $1.size }
        let blobs = Files.list(blobsDirectory).reduce(Int64(0)) { $0 + Int64(Files.size(blobsDirectory + "/" + $1) ?? 0) }
        var usage = Usage(images: images, layers: layers, layersOnDisk: layers.reduce(0) { $0 + $1.size },
                          unshared: images.reduce(0) { $0 + $1.size }, blobs: blobs)
        for disk in vmDisks() {
            var info = stat()
            guard stat(disk.path, &info) == 0 else { continue }
            usage.vmDisks += Int64(info.st_blocks) * 512
            usage.vmDiskCount += 1
        }
        return usage
    }
}
