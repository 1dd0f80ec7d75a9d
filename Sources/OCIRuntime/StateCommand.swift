import Containers
import HostOS

/// `state ID`: the OCI state JSON (runtime.md "State") on stdout.
enum StateCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [], command: "state")
        let id = try arguments.id("state")
        try arguments.expectingNoMore(than: 1, "state")
        let record = try options.store.loadSettled(id)
        StandardOutput.write(record.ociState().serialized(indent: 2) + "\n")
        return 0
    }
}
