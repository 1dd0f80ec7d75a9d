import ArgumentParser
import HostOS
import Images

/// `tandem image df`: disk use per image and per layer, shared layers counted once (docker system df -v).
struct ImageDfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "df", abstract: "Show the store's disk use: per image (shared and unique bytes) and per layer.",
        discussion: "Sizes are blocks allocated on disk (du). SHARED is what an image has in layers other images use too; the total counts each layer once."
    )
    @OptionGroup var storeOption: StoreOption
    @Flag(name: .long, help: "One JSON object on stdout.")
    var json = false

    func run() throws {
        let usage: ImageStore.Usage
        do { usage = try storeOption.imageStore.usage() } catch { throw fail("image df: \(error.description)") }
        if json {
            let images: [JSON] = usage.images.map { .object([("id", .string($0.record.id.description)), ("names", .array($0.record.names.map(JSON.string))),
                                                            ("size", .int($0.size)), ("shared", .int($0.shared)), ("unique", .int($0.unique))]) }
            let layers: [JSON] = usage.layers.map { .object([("diffID", .string($0.diffID.description)), ("size", .int($0.size)), ("images", .int(Int64($0.images)))]) }
            StandardOutput.write(JSON.object([("images", .array(images)), ("layers", .array(layers)), ("layersOnDisk", .int(usage.layersOnDisk)),
                                              ("withoutSharing", .int(usage.unshared)), ("blobs", .int(usage.blobs)),
                                              ("vmDisks", .int(usage.vmDisks)), ("vmDiskCount", .int(Int64(usage.vmDiskCount)))]).serialized(indent: 2) + "\n")
            return
        }
        var rows = [["IMAGE", "IMAGE ID", "SIZE", "SHARED", "UNIQUE"]]
        for image in usage.images {
            rows.append([image.record.displayName, image.record.id.short, ImageUsage.bytes(image.size), ImageUsage.bytes(image.shared), ImageUsage.bytes(image.unique)])
        }
        StandardOutput.write("Images:\n" + Table.render(rows) + "\n")
        var layerRows = [["LAYER (DIFF ID)", "SIZE", "IMAGES"]]
        for layer in usage.layers { layerRows.append([layer.diffID.short, ImageUsage.bytes(layer.size), String(layer.images)]) }
        StandardOutput.write("Layers:\n" + Table.render(layerRows) + "\n")
        StandardOutput.write("On disk: \(ImageUsage.bytes(usage.layersOnDisk)) of layers (each once; \(ImageUsage.bytes(usage.unshared)) if every image had its own copy), \(ImageUsage.bytes(usage.blobs)) of manifests and configs"
            + (usage.vmDiskCount == 0 ? "" : ", \(ImageUsage.bytes(usage.vmDisks)) of VM root disks (\(usage.vmDiskCount), for `run --as libvirt`)") + "\n")
    }
}
