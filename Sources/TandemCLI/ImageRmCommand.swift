import ArgumentParser
import HostOS
import Images

/// `tandem image rm REF...`: untag, and remove what no name holds any more.
struct ImageRmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "Remove images (by name: the name; the image goes with its last one).",
        discussion: "Layers no other image uses are removed with the image. An image a running container uses is kept.", aliases: ["rmi"]
    )
    @OptionGroup var storeOption: StoreOption
    @Flag(name: .shortAndLong, help: "Remove an image by id even when it has several names.")
    var force = false
    @Argument(help: ArgumentHelp("NAME[:TAG], an image id or a prefix of one.", valueName: "image"))
    var images: [String]

    func run() throws {
        let store: ImageStore
        do { store = try storeOption.writableStore() } catch { throw fail("image rm: \(error.description)") }
        var failed: [String] = []
        for image in images {
            do {
                for line in try store.remove(image, force: force, inUse: ImageUsage.inUse(store)) { StandardOutput.write(line + "\n") }
            } catch { failed.append("image rm \(image): \(error.description)") }
        }
        if !failed.isEmpty { throw fail(failed.joined(separator: "\n")) }
    }
}
