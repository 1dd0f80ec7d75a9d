import ArgumentParser
import HostOS
import Images

/// `tandem image prune`: unnamed images, then layers and blobs nothing uses.
struct ImagePruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Remove unnamed images, and layers and blobs no image uses.")
    @OptionGroup var storeOption: StoreOption

    func run() throws {
        do {
            let store = try storeOption.writableStore()
            let said = try store.prune(inUse: ImageUsage.inUse(store))
            for line in said { StandardOutput.write(line + "\n") }
            if said.isEmpty { StandardOutput.write("nothing to remove\n") }
        } catch { throw fail("image prune: \(error.description)") }
    }
}
