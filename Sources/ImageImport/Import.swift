import HostOS
import Images
#if canImport(Glibc)
import Glibc
#endif

extension ImageStore {
    // MARK: - Import

    /// What an import reports as it goes (for the CLI).
    public enum Progress { case layer(index: Int, count: Int, diffID: Digest, reused: Bool, stats: LayerUnpacker.Stats?) }

    /// Imports the image at `path` (an OCI layout directory, an oci-archive or a docker-archive;
    /// `reference` picks one of several), naming it `tags` (else the names the source gives).
    /// Every blob is checked against its digest and every layer against its diff ID.
    @discardableResult
    public func importImage(from path: String, reference: String? = nil, tags: [String] = [],
                            progress: (Progress) -> Void = { _ in }) throws(ImageError) -> ImageRecord {
        for tag in tags { _ = try Self.normalize(name: tag) }
        // Inside the lock: a compressed archive is decompressed into tmp/, which writers sweep.
        return try writing { () throws(ImageError) -> ImageRecord in
            let source = try ImageSource(path: path, scratch: temporaryDirectory)
            let image = try source.image(reference: reference)
            let imageName = "\(path)\(reference.map { ":" + $0 } ?? "")"
            let config = try ImageConfig(image.config.bytes, what: "\(imageName): config \(image.config.digest)")
            guard config.diffIDs.count == image.layers.count else {
                throw ImageError("\(imageName): config \(image.config.digest) lists \(config.diffIDs.count) diff IDs for \(image.layers.count) layers")
            }
            var names: [String] = []
            for name in tags.isEmpty ? image.names : tags {
                // An OCI ref.name that is a bare tag ("latest", as skopeo's oci:DIR:TAG writes) names no repository.
                guard tags.isEmpty ? (name.contains(":") || name.contains("/")) : true else { continue }
                if let normalized = try? Self.normalize(name: name), !names.contains(normalized) { names.append(normalized) }
            }
            var layers: [ImageRecord.Layer] = []
            for (index, descriptor) in image.layers.enumerated() {
                let diffID = config.diffIDs[index]
                let what = "\(imageName): layer \(descriptor.digest)"
                let reused = Files.kind(layersDirectory + "/" + diffID.hex + "/layer.json") == .regular
                var stats: LayerUnpacker.Stats?
                do throws(ImageError) {
                    if reused {
                        try verifyBlob(source, descriptor)
                    } else {
                        stats = try unpackLayer(source, descriptor, diffID: diffID)
                    }
                } catch { throw error.within(what) }
                layers.append(.init(diffID: diffID, blob: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size))
                progress(.layer(index: index, count: image.layers.count, diffID: diffID, reused: reused, stats: stats))
            }
            try writeBlob(image.config.bytes, image.config.digest)
            if let manifest = image.manifest { try writeBlob(manifest.bytes, manifest.descriptor.digest) }
            var record = ImageRecord(id: image.config.digest, manifest: image.manifest?.descriptor.digest, names: [],
                                     imported: Clock.realtimeNanoseconds(), source: source.format.rawValue, layers: layers)
            if let existing = try? load(image.config.digest) { record.names = existing.names }
            // A name moves to the image imported under it (the old one keeps its other names, or none).
            for other in try list() where other.id != record.id && other.names.contains(where: names.contains) {
                var moved = other
                moved.names.removeAll(where: names.contains)
                try save(moved)
            }
            for name in names where !record.names.contains(name) { record.names.append(name) }
            try save(record)
            return record
        }
    }

    /// Streams a layer blob through its digest check, gunzip, its diff-ID check and the
    /// unpacker, into tmp/; renamed into layers/ only when both digests and the size match.
    private func unpackLayer(_ source: ImageSource, _ descriptor: Descriptor, diffID: Digest) throws(ImageError) -> LayerUnpacker.Stats {
        let compression = try MediaType.layerCompression(descriptor.mediaType)
        let scratch = temporaryDirectory + "/" + diffID.hex + "." + String(getpid())
        guard mkdir(scratch, 0o700) == 0, mkdir(scratch + "/diff", 0o755) == 0 else { throw ImageError(SystemError("mkdir", scratch)) }
        do throws(ImageError) {
            let blob = HashingStream(try source.openBlob(descriptor))
            let plain = compression == .none ? HashingStream(blob) : HashingStream(try DecompressingStream(blob, compression, name: compression.rawValue))
            let stats = try LayerUnpacker.unpack(TarReader(plain, name: "tar"), into: scratch + "/diff")
            // What follows the end-of-archive blocks is part of both digests.
            try plain.drain()
            try blob.drain()
            guard blob.count == descriptor.size else { throw ImageError("\(blob.count) bytes, the manifest says \(descriptor.size)") }
            let actual = blob.finish()
            guard actual == descriptor.digest else { throw ImageError("does not match its digest (its bytes hash to \(actual))") }
            let uncompressed = plain.finish()
            guard uncompressed == diffID else { throw ImageError("uncompressed, does not match the config's diff ID \(diffID) (it hashes to \(uncompressed))") }
            let record = LayerRecord(diffID: diffID, usage: DiskUsage.measure(scratch + "/diff"), entries: stats.entries, contentBytes: stats.bytes)
            try Self.writeAtomically(scratch + "/layer.json", Array(record.json().serialized(indent: 2).utf8))
            guard rename(scratch, layersDirectory + "/" + diffID.hex) == 0 else { throw ImageError(SystemError("rename", scratch)) }
            return stats
        } catch {
            let temporary = Self.openDirectory(temporaryDirectory)
            try? FileTree.remove(temporary, Array("\(diffID.hex).\(getpid())".utf8))
            close(temporary)
            throw error
        }
    }

    /// A layer already in the store: its blob is still read through once, so a blob that does
    /// not match its digest fails the import whatever the store holds.
    private func verifyBlob(_ source: ImageSource, _ descriptor: Descriptor) throws(ImageError) {
        let blob = HashingStream(try source.openBlob(descriptor))
        try blob.drain()
        guard blob.count == descriptor.size else { throw ImageError("\(blob.count) bytes, the manifest says \(descriptor.size)") }
        let actual = blob.finish()
        guard actual == descriptor.digest else { throw ImageError("does not match its digest (its bytes hash to \(actual))") }
    }

    private func writeBlob(_ bytes: [UInt8], _ digest: Digest) throws(ImageError) {
        let path = blobsDirectory + "/" + digest.hex
        guard Files.kind(path) != .regular else { return }
        try Self.writeAtomically(path, bytes)
    }
}
