import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `ps [--format table|json] ID [ps options]`: the container's processes — `ps` output (default
/// `ps -ef`) filtered to its cgroup, or their pids as JSON.
enum PsCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("format", "f", value: true)], command: "ps")
        let id = try arguments.id("ps")
        let record = try options.store.load(id)
        guard record.currentStatus != .stopped else { throw OCIError("ps \(id): the container is stopped") }
        let pids = Set(record.processes())
        let format = arguments.value("format") ?? "table"
        switch format {
        case "json":
            StandardOutput.write(JSON.array(pids.sorted().map { .int(Int64($0)) }).serialized() + "\n")
        case "table":
            let psArguments = arguments.positionals.count > 1 ? Array(arguments.positionals.dropFirst()) : ["-ef"]
            guard let ps = Files.which("ps") else { throw OCIError("ps: the ps program is not installed (procps)") }
            let result: Subprocess.Result
            do { result = try Subprocess.run(ps, psArguments, mergeStandardError: false) } catch { throw OCIError("ps: \(error.description)") }
            let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
            guard let header = lines.first, let column = header.split(separator: " ").firstIndex(of: "PID") else {
                throw OCIError("ps \(psArguments.joined(separator: " ")): its output has no PID column")
            }
            var out = String(header) + "\n"
            for line in lines.dropFirst() {
                let fields = line.split(separator: " ")
                if fields.count > column, let pid = pid_t(fields[column]), pids.contains(pid) { out += line + "\n" }
            }
            StandardOutput.write(out)
        default:
            throw OCIError("ps: --format \(format): use table or json")
        }
        return 0
    }
}
