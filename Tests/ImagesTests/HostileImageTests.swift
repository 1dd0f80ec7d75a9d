import Foundation
import HostOS
import ImageImport
import Images
import Testing

/// Layers and manifests are hostile input: each case is refused with an error naming the image
/// (and the blob, where one is at fault), and the store is left as it was.
@Suite("Hostile images: refused by name, the store unchanged", .enabled(if: isRoot, "needs root (layer owners and whiteouts)"))
struct HostileImageTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let expected: String
        /// Whether the error names the layer's blob digest.
        let namesBlob: Bool
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "an entry with ..", expected: "has a '..' component", namesBlob: true),
        Case(name: "an absolute path", expected: "is absolute", namesBlob: true),
        Case(name: "a write through a symlink", expected: "a symlink in this layer", namesBlob: true),
        Case(name: "a hard link out of the layer", expected: "hard link target has a '..' component", namesBlob: true),
        Case(name: "a hard link to a file not in the layer", expected: "which is not in this layer", namesBlob: true),
        Case(name: "a layer that does not match its digest", expected: "does not match its digest", namesBlob: true),
        Case(name: "a layer that does not match its diff ID", expected: "does not match the config's diff ID", namesBlob: true),
        Case(name: "a truncated tar", expected: "truncated", namesBlob: true),
        Case(name: "a missing blob", expected: "missing", namesBlob: true),
        Case(name: "an unknown media type", expected: "unknown layer media type \"application/x-tandem-bogus\"", namesBlob: true),
        Case(name: "a layer listed twice", expected: "is listed twice", namesBlob: true),
        Case(name: "a config that does not match its digest", expected: "does not match its digest", namesBlob: false),
        Case(name: "an overlay xattr in a layer", expected: "trusted.overlay.redirect", namesBlob: true),
    ]

    @Test("refused, named, nothing stored", arguments: cases)
    func refused(_ hostile: Case) throws {
        let scratch = try Scratch()
        _ = try SampleImage.layout(at: scratch.directory.appendingPathComponent("good"))
        try scratch.store.importImage(from: scratch.path("good"))
        let before = scratch.snapshot()
        let outside = scratch.path("outside")
        try FileManager.default.createDirectory(atPath: outside, withIntermediateDirectories: true)

        var layout = try OCILayoutBuilder(scratch.directory.appendingPathComponent("bad"))
        var tar = TarBuilder()
        tar.file("fine", "a file before the bad entry\n")
        var layer = OCILayoutBuilder.Layer(tar: Data(), gzip: false)
        var duplicate = false
        switch hostile.name {
        case "an entry with ..": tar.entry("../escape", kind: .file, content: Data("x".utf8), mode: 0o644)
        case "an absolute path": tar.entry("/etc/tandem-evil", kind: .file, content: Data("x".utf8), mode: 0o644)
        case "a write through a symlink":
            tar.symlink("link", to: outside)
            tar.file("link/evil", "written through the link\n")
        case "a hard link out of the layer": tar.hardLink("h", to: "../../../etc/passwd")
        case "a hard link to a file not in the layer": tar.hardLink("h", to: "etc/shadow")
        case "a layer that does not match its digest", "a missing blob", "a config that does not match its digest": break
        case "a layer that does not match its diff ID": layer.diffID = "sha256:" + String(repeating: "ab", count: 32)
        case "a truncated tar": tar.file("big", String(repeating: "z", count: 5000))
        case "an unknown media type": layer.mediaType = "application/x-tandem-bogus"
        case "a layer listed twice": duplicate = true
        case "an overlay xattr in a layer": tar.file("redirected", "x", xattrs: [("trusted.overlay.redirect", "/data")])
        default: Issue.record("no such case \(hostile.name)")
        }
        layer.tar = hostile.name == "a truncated tar" ? tar.data.prefix(1500) : tar.archive
        try layout.image([.init(tar: try SampleImage.base().archive), layer], config: SampleImage.config, name: "bad:1", duplicateLayer: duplicate)
        // Tamper with blobs after the manifest names them.
        let manifest = try JSONSerialization.jsonObject(with: Data(contentsOf: scratch.directory.appendingPathComponent("bad/blobs/sha256/" + String((try JSONSerialization.jsonObject(with: Data(contentsOf: scratch.directory.appendingPathComponent("bad/index.json"))) as! [String: Any])["manifests"].map { ($0 as! [[String: Any]])[0]["digest"] as! String }!.dropFirst(7))))) as! [String: Any]
        let layers = manifest["layers"] as! [[String: Any]]
        let badBlob = String((layers.last!["digest"] as! String).dropFirst(7))
        let blobPath = scratch.path("bad/blobs/sha256/" + badBlob)
        switch hostile.name {
        case "a layer that does not match its digest":
            var bytes = try Data(contentsOf: URL(fileURLWithPath: blobPath))
            bytes[514] ^= 0x20  // inside the first file's contents: still a tar, another digest
            try bytes.write(to: URL(fileURLWithPath: blobPath))
        case "a missing blob": try FileManager.default.removeItem(atPath: blobPath)
        case "a config that does not match its digest":
            let config = String(((manifest["config"] as! [String: Any])["digest"] as! String).dropFirst(7))
            let path = scratch.path("bad/blobs/sha256/" + config)
            let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "SIGUSR1", with: "SIGUSR2")
            try text.write(toFile: path, atomically: false, encoding: .utf8)
        default: break
        }

        do {
            try scratch.store.importImage(from: scratch.path("bad"))
            Issue.record("\(hostile.name): imported")
        } catch {
            #expect(error.description.contains(hostile.expected), "\(hostile.name): \(error.description)")
            #expect(error.description.contains(scratch.path("bad")), "names the image: \(error.description)")
            if hostile.namesBlob { #expect(error.description.contains(badBlob), "names the blob: \(error.description)") }
        }
        #expect(scratch.snapshot() == before, "\(hostile.name): the store changed")
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty, "written outside the layer")
        #expect(!FileManager.default.fileExists(atPath: "/etc/tandem-evil"))
    }

    @Test("a device node is refused when not root (rootless); a fifo is not")
    func deviceWhenRootless() throws {
        let scratch = try Scratch()
        var tar = TarBuilder()
        tar.entry("pipe", kind: .fifo, mode: 0o644)
        tar.device("null", major: 1, minor: 3)
        try tar.archive.write(to: scratch.directory.appendingPathComponent("layer.tar"))
        let target = scratch.path("unpacked")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        #expect {
            _ = try LayerUnpacker.unpack(TarReader(FileRange(path: scratch.path("layer.tar")), name: "layer.tar"), into: target, asRoot: false)
        } throws: { error in
            "\(error)".contains("null: a device node (1:3): device nodes are refused when not root")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: target) == ["pipe"])
    }

    @Test("in a user namespace (a rootless store): device nodes under /dev are left out and counted, others refused; opaque directories get user.overlay.opaque only")
    func userNamespace() throws {
        let scratch = try Scratch()
        var tar = TarBuilder()
        tar.directory("dev")
        tar.device("dev/null", major: 1, minor: 3)
        tar.directory("d")
        tar.file("d/.wh..wh..opq", "")
        try tar.archive.write(to: scratch.directory.appendingPathComponent("layer.tar"))
        let target = scratch.path("unpacked")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        let stats = try LayerUnpacker.unpack(TarReader(FileRange(path: scratch.path("layer.tar")), name: "layer.tar"), into: target, asRoot: true, inUserNamespace: true)
        #expect(stats.skippedDeviceNodes == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: target + "/dev").isEmpty)
        #expect(Probe.xattr(target + "/d", "user.overlay.opaque") == "y")
        #expect(Probe.xattr(target + "/d", "trusted.overlay.opaque") == nil, "a rootless store cannot hold trusted.*")
        var outside = TarBuilder()
        outside.device("null", major: 1, minor: 3)
        try outside.archive.write(to: scratch.directory.appendingPathComponent("outside.tar"))
        let other = scratch.path("other")
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        #expect {
            _ = try LayerUnpacker.unpack(TarReader(FileRange(path: scratch.path("outside.tar")), name: "outside.tar"), into: other, asRoot: true, inUserNamespace: true)
        } throws: { error in
            "\(error)".contains("null: a device node (1:3): device nodes are refused when not root (rootless), except under /dev")
        }
    }
}
