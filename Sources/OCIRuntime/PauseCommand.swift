import Containers
import Cgroups
import HostOS

/// `pause ID` / `resume ID`: the cgroup freezer (v1 freezer.state, v2 cgroup.freeze).
enum PauseCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions, pause: Bool) throws(OCIError) -> Int32 {
        let command = pause ? "pause" : "resume"
        let arguments = try Arguments(rest, flags: [], command: command)
        let id = try arguments.id(command)
        try Lifecycle.pause(try options.store.load(id), frozen: pause)
        return 0
    }
}
