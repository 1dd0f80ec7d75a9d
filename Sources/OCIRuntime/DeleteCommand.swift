import Containers
import CLinux
import Cgroups
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `delete [--force] ID`: removes a stopped container (a created one too, as runc does; a
/// running one only with --force, after SIGKILL). poststop hooks run last.
enum DeleteCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: [Arguments.Flag("force", "f")], command: "delete")
        let id = try arguments.id("delete")
        try arguments.expectingNoMore(than: 1, "delete")
        let force = arguments.flag("force")
        let store = options.store
        let record: Record
        do { record = try store.load(id) } catch {
            if force && Files.kind(store.directory(id)) == .missing { return 0 }  // runc: --force on a missing container is fine
            throw error
        }
        try Lifecycle.delete(record, force: force, store: store, log: options.log)
        return 0
    }
}
