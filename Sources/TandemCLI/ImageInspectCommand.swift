import ArgumentParser
import HostOS
import Images

/// `tandem image inspect REF`: an image's record and config, as JSON.
struct ImageInspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Show an image's names, layers and run configuration as JSON.")
    @OptionGroup var storeOption: StoreOption
    @Argument(help: ArgumentHelp("NAME[:TAG], an image id or a prefix of one.", valueName: "image"))
    var image: String

    func run() throws {
        let store = storeOption.imageStore
        do {
            let record = try store.find(image)
            let config = try store.config(of: record)
            func strings(_ list: [String]) -> JSON { .array(list.map(JSON.string)) }
            let layers: [JSON] = record.layers.map { layer in
                let stored = store.layer(layer.diffID)
                return .object([("diffID", .string(layer.diffID.description)), ("blob", .string(layer.blob.description)),
                                ("mediaType", .string(layer.mediaType)), ("blobSize", .int(layer.size)),
                                ("size", .int(stored?.usage.apparent ?? 0)), ("diskBytes", .int(stored?.usage.allocated ?? 0)),
                                ("path", .string(store.layerPath(layer.diffID)))])
            }
            let json = JSON.object([
                ("id", .string(record.id.description)), ("names", strings(record.names)),
                ("manifest", record.manifest.map { .string($0.description) } ?? .null), ("source", .string(record.source)),
                ("architecture", .string(config.architecture)), ("os", .string(config.os)), ("created", config.created.map(JSON.string) ?? .null),
                ("config", .object([("Entrypoint", strings(config.entrypoint)), ("Cmd", strings(config.cmd)), ("Env", strings(config.env)),
                                    ("WorkingDir", config.workingDir.map(JSON.string) ?? .null), ("User", config.user.map(JSON.string) ?? .null),
                                    ("StopSignal", config.stopSignal.map(JSON.string) ?? .null)])),
                ("layers", .array(layers)),
            ])
            StandardOutput.write(json.serialized(indent: 2) + "\n")
        } catch { throw fail("image inspect \(image): \(error.description)") }
    }
}
