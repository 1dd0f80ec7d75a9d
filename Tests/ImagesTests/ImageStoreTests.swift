import Foundation
import HostOS
import ImageImport
import Images
import Testing

/// A store and a work directory per test, removed after it.
final class Scratch {
    let directory: URL
    var store: ImageStore { ImageStore(root: directory.appendingPathComponent("store").path) }
    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-images-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: directory) }
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// What the store shows and holds: image ids with names, layer directories, blobs, tmp/.
    func snapshot() -> [String] {
        let root = directory.appendingPathComponent("store").path
        let images = (try? store.list().map { "\($0.id) \($0.names)" }) ?? []
        let listing = ["layers", "blobs/sha256", "tmp", "images"].flatMap { sub in
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + sub)) ?? []).filter { !$0.hasSuffix(".lock") }.sorted().map { sub + "/" + $0 }
        }
        return images + listing
    }
}

enum Probe {
    static func xattr(_ path: String, _ name: String) -> String? {
        let result = try? TestTools.run("/usr/bin/python3", ["-c", "import os,sys; sys.stdout.write(os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False).decode())", path, name])
        return result?.status == 0 ? result?.stdout : nil
    }
    static func stat(_ path: String) -> stat? {
        var info = Glibc.stat()
        return lstat(path, &info) == 0 ? info : nil
    }
}

let isRoot = getuid() == 0
let hasSkopeo = FileManager.default.isExecutableFile(atPath: "/usr/bin/skopeo")

@Suite("Image store: import, layers unpacked once, whiteouts, sharing", .enabled(if: isRoot, "needs root (owners, whiteout device nodes, trusted.* xattrs)"))
struct ImageStoreTests {
    @Test("an OCI layout: two layers unpacked with owners, modes, hard links, xattrs; whiteouts and the opaque marker as overlay's")
    func importLayout() throws {
        let scratch = try Scratch()
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("layout"))
        let store = scratch.store
        let record = try store.importImage(from: scratch.path("layout"))
        #expect(record.names == ["sample:1"])
        #expect(record.layers.count == 2)
        let base = store.layerPath(record.layers[0].diffID), changes = store.layerPath(record.layers[1].diffID)
        // Layer 1.
        let keep = try #require(Probe.stat(base + "/data/keep")), link = try #require(Probe.stat(base + "/data/link"))
        #expect(keep.st_ino == link.st_ino, "the hard link is a hard link")
        #expect(keep.st_uid == 1000 && keep.st_gid == 1000)
        #expect(try #require(Probe.stat(base + "/data/mode")).st_mode & 0o7777 == 0o4750, "set-uid survives the chown")
        #expect(Probe.xattr(base + "/data/xattr", "user.tandem") == "yes")
        #expect(try #require(Probe.stat(base + "/home/app")).st_mode & 0o7777 == 0o750)
        #expect(try #require(Probe.stat(base + "/home/app")).st_mtim.tv_sec == 1_700_000_000, "a directory's time is set after its files")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: base + "/bin/sh") == "busybox")
        #expect(FileManager.default.fileExists(atPath: base + "/gone"))
        // Layer 2: overlay's whiteout (0/0 character device) and opaque directory.
        let whiteout = try #require(Probe.stat(changes + "/gone"))
        #expect(whiteout.st_mode & S_IFMT == S_IFCHR && whiteout.st_rdev == 0)
        #expect(!FileManager.default.fileExists(atPath: changes + "/.wh.gone"))
        #expect(Probe.xattr(changes + "/opaque", "trusted.overlay.opaque") == "y")
        #expect(Probe.xattr(changes + "/opaque", "user.overlay.opaque") == "y", "for an overlay in a user namespace (--userns)")
        #expect(!FileManager.default.fileExists(atPath: changes + "/opaque/.wh..wh..opq"))
        // The merged view, as a container sees it (mounted in a mount namespace of its own: other
        // tests compare the host's mount table meanwhile).
        let merged = scratch.path("merged")
        try FileManager.default.createDirectory(atPath: merged, withIntermediateDirectories: true)
        let script = "mount -t overlay overlay -o lowerdir=\(changes):\(base) \(merged) && cd \(merged) && echo gone=$(ls -d gone 2>/dev/null) && echo opaque=$(ls opaque) && echo data=$(ls data)"
        let view = try TestTools.run("/usr/bin/unshare", ["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script])
        try #require(view.status == 0, "\(view.stderr)")
        #expect(view.stdout == "gone=\nopaque=new\ndata=keep link mode new xattr\n", "whiteout and opaque directory as overlay shows them: \(view.stdout)")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/tmp"))
        #expect(leftovers.isEmpty)
    }

    @Test("the same image as oci-archive and docker-archive (skopeo copy): the same id, its layers stored once",
          .enabled(if: hasSkopeo, "needs skopeo (Debian's skopeo package)"))
    func archives() throws {
        let scratch = try Scratch()
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("layout"))
        for (transport, file) in [("oci-archive", "image.oci.tar"), ("docker-archive", "image.docker.tar")] {
            let copy = try TestTools.run("/usr/bin/skopeo", ["--insecure-policy", "copy", "-q", "oci:\(scratch.path("layout")):sample:1", "\(transport):\(scratch.path(file)):sample:1"])
            try #require(copy.status == 0, "skopeo copy to \(transport): \(copy.stderr)")
        }
        let store = scratch.store
        let fromLayout = try store.importImage(from: scratch.path("layout"))
        let layers = try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/layers")).sorted()
        var events: [Bool] = []
        let fromOCIArchive = try store.importImage(from: scratch.path("image.oci.tar"), tags: ["sample:oci"]) { event in
            if case .layer(_, _, _, let reused, _) = event { events.append(reused) }
        }
        let fromDocker = try store.importImage(from: scratch.path("image.docker.tar"))
        #expect(fromOCIArchive.id == fromLayout.id && fromDocker.id == fromLayout.id, "one config, one id")
        #expect(fromDocker.layers.map(\.diffID) == fromLayout.layers.map(\.diffID))
        #expect(events == [true, true], "the archive's layers were in the store already")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/layers")).sorted() == layers)
        let images = try store.list()
        #expect(images.count == 1)
        #expect(Set(images[0].names) == ["sample:1", "sample:oci"])
        #expect(try store.find("sample:oci").id == fromLayout.id)
        #expect(try store.find(String(fromLayout.id.hex.prefix(8))).id == fromLayout.id)
    }

    @Test("zstd layers, and archives compressed whole (gzip, zstd) as `docker save | gzip` makes them: one image, nothing left in tmp/; xz named and refused")
    func compressed() throws {
        let scratch = try Scratch()
        var layout = try OCILayoutBuilder(scratch.directory.appendingPathComponent("layout"))
        let base = OCILayoutBuilder.Layer(tar: try SampleImage.base().archive, zstd: true)
        try layout.image([base, .init(tar: SampleImage.changes().archive)], config: SampleImage.config, name: "zstd:1")
        let store = scratch.store
        let record = try store.importImage(from: scratch.path("layout"))
        #expect(record.layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar+zstd")
        let busybox = try #require(Probe.stat(store.layerPath(record.layers[0].diffID) + "/bin/busybox"))
        #expect(busybox.st_size == (try #require(Probe.stat("/bin/busybox"))).st_size, "the zstd layer's file, whole")
        // The layout as an oci-archive (a tar of the directory), then compressed whole.
        let archive = scratch.path("image.oci.tar")
        let tar = try TestTools.run("/bin/tar", ["-C", scratch.path("layout"), "-cf", archive, "."])
        try #require(tar.status == 0, "\(tar.stderr)")
        let plain = try Data(contentsOf: URL(fileURLWithPath: archive))
        for (suffix, bytes) in [("gz", try TestTools.gzip(plain)), ("zst", try TestTools.zstd(plain))] {
            let file = archive + "." + suffix
            try bytes.write(to: URL(fileURLWithPath: file))
            let again = try store.importImage(from: file, tags: ["zstd:\(suffix)"])
            #expect(again.id == record.id, "\(suffix): one config, one id")
            #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/tmp")).isEmpty, "\(suffix): the decompressed copy is gone")
        }
        #expect(Set(try store.find("zstd:1").names) == ["zstd:1", "zstd:gz", "zstd:zst"])
        // xz (which docker load reads too): named, not taken for a tar.
        let xz = try TestTools.run("/usr/bin/python3", ["-c", "import lzma,sys; open(sys.argv[2],'wb').write(lzma.compress(open(sys.argv[1],'rb').read()))", archive, archive + ".xz"])
        try #require(xz.status == 0, "\(xz.stderr)")
        #expect {
            try store.importImage(from: archive + ".xz")
        } throws: { error in
            "\(error)".contains("image.oci.tar.xz: an archive compressed with xz")
        }
        // A truncated zstd layer (into a store without it): refused as truncated, named.
        var cut = try OCILayoutBuilder(scratch.directory.appendingPathComponent("cut"))
        try cut.image([base], config: SampleImage.config, name: "cut:1")
        let blob = try #require(try FileManager.default.contentsOfDirectory(atPath: scratch.path("cut/blobs/sha256")).first { name in
            (try? Data(contentsOf: URL(fileURLWithPath: scratch.path("cut/blobs/sha256/" + name))).starts(with: [0x28, 0xb5, 0x2f, 0xfd])) == true
        })
        let full = try Data(contentsOf: URL(fileURLWithPath: scratch.path("cut/blobs/sha256/" + blob)))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: scratch.path("cut/blobs/sha256/" + blob)))
        #expect {
            try ImageStore(root: scratch.path("other")).importImage(from: scratch.path("cut"))
        } throws: { error in
            "\(error)".contains("sha256:\(blob)") && "\(error)".contains("zstd: truncated")
        }
    }

    @Test("two images sharing two layers store them once: df counts them shared")
    func sharing() throws {
        let scratch = try Scratch()
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("a"), name: "a:1")
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("b"), name: "b:1", second: "b:2")
        let store = scratch.store
        let a = try store.importImage(from: scratch.path("a"))
        let b = try store.importImage(from: scratch.path("b"), reference: "b:2")
        #expect(Array(b.layers.prefix(2)) == a.layers)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/layers")).count == 3)
        let usage = try store.usage()
        let base = try #require(store.layer(a.layers[0].diffID)).usage.allocated + (try #require(store.layer(a.layers[1].diffID)).usage.allocated)
        let imageB = try #require(usage.images.first { $0.record.id == b.id })
        #expect(imageB.shared == base)
        #expect(imageB.unique == imageB.size - base && imageB.unique > 0)
        #expect(usage.unshared - usage.layersOnDisk == base, "the shared layers are on disk once")
    }

    @Test("rm by name untags, the last name removes the image and the layers only it used; prune removes unnamed images")
    func removal() throws {
        let scratch = try Scratch()
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("b"), name: "b:1", second: "b:2")
        let store = scratch.store
        let one = try store.importImage(from: scratch.path("b"), reference: "b:1", tags: ["b:1", "b:one"])
        let two = try store.importImage(from: scratch.path("b"), reference: "b:2")
        #expect(throws: ImageError.self) { try store.remove(one.id.hex, inUse: { _ in false }) }  // two names
        #expect(throws: ImageError.self) { try store.remove("b:2", inUse: { $0 == two.id }) }      // in use
        #expect(try store.find("b:2").id == two.id, "a refused rm changes nothing")
        #expect(try store.remove("b:one", inUse: { _ in false }) == ["Untagged: b:one"])
        let said = try store.remove("b:2", inUse: { _ in false })
        #expect(said.contains("Deleted: \(two.id)"))
        #expect(said.contains("Deleted layer: \(two.layers[2].diffID)"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/layers")).count == 2)
        // A name moved away leaves an unnamed image, which prune removes.
        _ = try store.importImage(from: scratch.path("b"), reference: "b:2", tags: ["b:1"])
        #expect(try store.find(one.id.hex).names.isEmpty)
        let pruned = try store.prune(inUse: { _ in false })
        #expect(pruned.contains("Deleted: \(one.id)"))
        #expect(try store.list().map(\.id) == [two.id])
    }

    @Test("a writer killed mid-import leaves only tmp/, which the next writer clears; ls never shows it")
    func interrupted() throws {
        let scratch = try Scratch()
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("layout"))
        let store = scratch.store
        try FileManager.default.createDirectory(atPath: scratch.path("store/tmp/abc.123/diff/etc"), withIntermediateDirectories: true)
        #expect(try store.list().isEmpty)
        try store.importImage(from: scratch.path("layout"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path("store/tmp")).isEmpty)
    }
}
