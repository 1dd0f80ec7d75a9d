import ArgumentParser
import HostOS
import ImageImport
import Images

/// `tandem image import PATH[:REF]`: an OCI image layout, an oci-archive or a docker-archive into the store.
struct ImageImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an image from an OCI layout directory, an oci-archive or a docker-archive (docker save) tarball.",
        discussion: "Every blob is checked against its digest and every layer against the config's diff ID; layers already in the store are not unpacked again. PATH:REF picks one of several images in the source."
    )
    @OptionGroup var storeOption: StoreOption
    @Argument(help: ArgumentHelp("The layout directory or archive (PATH:REF for one of several images).", valueName: "path"))
    var path: String
    @Option(name: .long, help: ArgumentHelp("Name the image NAME[:TAG] (repeatable; default: the names the source gives).", valueName: "name"))
    var tag: [String] = []
    @Flag(name: .shortAndLong, help: "Print only the image id.")
    var quiet = false

    func run() throws {
        var source = path, reference: String?
        // PATH:REF (REF may have a colon itself: name:tag): the shortest existing PATH.
        if Files.kind(path) == .missing,
           let colon = path.indices.first(where: { path[$0] == ":" && Files.kind(String(path[..<$0])) != .missing }) {
            source = String(path[..<colon])
            reference = String(path[path.index(after: colon)...])
        }
        let began = Clock.monotonicNanoseconds()
        do {
            let record = try storeOption.writableStore().importImage(from: source, reference: reference, tags: tag) { event in
                guard !quiet, case .layer(let index, let count, let diffID, let reused, let stats) = event else { return }
                let what = reused ? "already in the store" : stats.map {
                    "\($0.entries) entries, \(ImageUsage.bytes($0.bytes))"
                        + ($0.skippedDeviceNodes == 0 ? "" : "; \($0.skippedDeviceNodes) device nodes under /dev left out (a rootless store; a container's /dev is its own)")
                } ?? ""
                StandardOutput.write("layer \(index + 1)/\(count) \(diffID.short): \(what)\n")
            }
            if quiet { StandardOutput.write(record.id.description + "\n"); return }
            let milliseconds = (Clock.monotonicNanoseconds() - began) / 1_000_000
            StandardOutput.write("imported \(record.displayName) (\(record.id.short)) in \(milliseconds) ms\n")
        } catch {
            throw fail("image import \(path): \(error.description)")
        }
    }
}
