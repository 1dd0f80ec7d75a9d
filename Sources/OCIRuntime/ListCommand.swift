import Containers
#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// `list [--format table|json] [--quiet]`: every container under --root.
enum ListCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("format", "f", value: true), Arguments.Flag("quiet", "q")], command: "list")
        try arguments.expectingNoMore(than: 0, "list")
        let format = arguments.value("format") ?? "table"
        guard ["table", "json"].contains(format) else { throw OCIError("list: --format \(format): use table or json") }
        let records = options.store.records(settled: true)
        if arguments.flag("quiet") {
            StandardOutput.write(records.map { $0.id + "\n" }.joined())
            return 0
        }
        if format == "json" {
            StandardOutput.write(JSON.array(records.map { $0.ociState() }).serialized() + "\n")
            return 0
        }
        var rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
        for record in records {
            let status = record.currentStatus
            rows.append([record.id, String(status == .stopped ? 0 : record.pid), status.rawValue, record.bundle,
                         UTCTime.format(nanoseconds: record.createdNanoseconds, fraction: true), owner(of: options.store.directory(record.id))])
        }
        let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            StandardOutput.write(row.enumerated().map { $0.offset == 5 ? $0.element : $0.element + String(repeating: " ", count: widths[$0.offset] - $0.element.count + 3) }.joined() + "\n")
        }
        return 0
    }

    /// Who owns the container's state directory (runc's OWNER): root, or a rootless user.
    static func owner(of directory: String) -> String {
        var info = stat()
        guard stat(directory, &info) == 0 else { return "?" }
        if let entry = getpwuid(info.st_uid), let name = entry.pointee.pw_name { return String(cString: name) }
        return "#\(info.st_uid)"
    }
}
