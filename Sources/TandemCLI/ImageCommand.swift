import ArgumentParser
import Containers
import HostOS
import Images

/// `tandem image`: the guest image every backend runs, and users' own OCI images in the store.
struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Build the guest image; import, list, inspect and remove OCI images in Tandem's store.",
        subcommands: [ImageBuildCommand.self, ImageImportCommand.self, ImagePullCommand.self, ImageLsCommand.self, ImageInspectCommand.self,
                      ImageRmCommand.self, ImagePruneCommand.self, ImageDfCommand.self]
    )
}

/// `--store DIR`, on every image command (and `tandem run`).
struct StoreOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The image store (default /var/lib/tandem; not root: ~/.local/share/tandem).", valueName: "dir"))
    var store: String?

    var imageStore: ImageStore { ImageStore(root: RootlessStore.store ?? store.map(Files.absolute) ?? ImageStore.defaultRoot) }

    /// For the commands that write the store: not as root, run again in the user's namespace
    /// (`RootlessStore`); then the store as chosen outside.
    func writableStore() throws(ImageError) -> ImageStore {
        try RootlessStore.enterIfNeeded(store: imageStore.root)
        return imageStore
    }
}

enum ImageUsage {
    /// Whether a live container (in the default state directory) runs from image `id` of `store`
    /// (its monitor holds the image too; this covers a container whose monitor was killed).
    static func inUse(_ store: ImageStore) -> (Digest) -> Bool {
        { id in
            ContainerControl(stateRoot: RootlessStore.stateRoot).all().contains { record in
                record.annotation(ContainerSpec.Annotation.imageID) == id.description
                    && record.annotation(ContainerSpec.Annotation.imageStore) == store.root && record.isProcessAlive
            }
        }
    }

    /// Bytes as people read them (1000-based, as docker images prints sizes).
    static func bytes(_ count: Int64) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var value = Double(count), unit = 0
        while value >= 1000 && unit < units.count - 1 { value /= 1000; unit += 1 }
        if unit == 0 { return "\(count)B" }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)" + units[unit]
    }
}
