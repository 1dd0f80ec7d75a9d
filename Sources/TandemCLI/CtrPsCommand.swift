import ArgumentParser
import Containers
import HostOS

/// `tandem ctr ps`: every container in the state directory.
struct CtrPsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List containers (running, stopped, and dead ones rm can clean up).")
    @OptionGroup var state: StateRootOption
    @Flag(name: .long, help: "One JSON array on stdout.")
    var json = false

    func run() throws {
        let states = state.control.all()
        if json {
            let items: [JSON] = states.map { item in
                let members: [(String, JSON)] = [
                    ("id", .string(item.id)), ("name", .string(item.displayName)), ("status", .string(ContainerControl.status(item))),
                    ("pid", .int(Int64(item.pid))), ("command", .array(item.command.map { .string($0) })),
                    ("image", .string(item.annotation(ContainerSpec.Annotation.image) ?? item.rootfs)),
                    ("exit_status", item.exitStatus.map { .int(Int64($0)) } ?? .null),
                ]
                return .object(members)
            }
            StandardOutput.write(JSON.array(items).serialized(indent: 2) + "\n")
            return
        }
        var rows = [["CONTAINER ID", "NAME", "STATUS", "PID", "COMMAND"]]
        for item in states {
            rows.append([String(item.id.prefix(12)), item.displayName, ContainerControl.status(item), item.pid > 0 ? String(item.pid) : "-",
                         item.command.joined(separator: " ")])
        }
        StandardOutput.write(Table.render(rows))
    }
}

/// Left-aligned columns, two spaces apart.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        let widths = (0..<(rows.first?.count ?? 0)).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count + 2)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }
}
