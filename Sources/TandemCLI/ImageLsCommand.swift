import ArgumentParser
import HostOS
import Images

/// `tandem image ls`: the store's images, newest first.
struct ImageLsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the images in the store.", aliases: ["list"])
    @OptionGroup var storeOption: StoreOption
    @Flag(name: .long, help: "One JSON array on stdout.")
    var json = false

    func run() throws {
        let store = storeOption.imageStore
        let records: [ImageRecord]
        do { records = try store.list() } catch { throw fail("image ls: \(error.description)") }
        func size(_ record: ImageRecord) -> Int64 { Set(record.layers.map(\.diffID)).reduce(0) { $0 + (store.layer($1)?.usage.apparent ?? 0) } }
        if json {
            let items: [JSON] = records.map { record in
                .object([("id", .string(record.id.description)), ("names", .array(record.names.map(JSON.string))),
                         ("manifest", record.manifest.map { .string($0.description) } ?? .null), ("layers", .int(Int64(record.layers.count))),
                         ("size", .int(size(record))), ("imported", .uint(record.imported)), ("source", .string(record.source))])
            }
            StandardOutput.write(JSON.array(items).serialized(indent: 2) + "\n")
            return
        }
        var rows = [["NAME", "IMAGE ID", "LAYERS", "SIZE"]]
        for record in records {
            for name in record.names.isEmpty ? ["<none>"] : record.names {
                rows.append([name, record.id.short, String(record.layers.count), ImageUsage.bytes(size(record))])
            }
        }
        StandardOutput.write(Table.render(rows))
    }
}
