import Cgroups
import HostOS

/// `pause ID` / `resume ID`: the cgroup freezer (v1 freezer.state, v2 cgroup.freeze).
enum PauseCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions, pause: Bool) throws(OCIError) -> Int32 {
        let command = pause ? "pause" : "resume"
        let arguments = try Arguments(rest, flags: [], command: command)
        let id = try arguments.id(command)
        let record = try options.store.load(id)
        let status = record.currentStatus
        guard status == (pause ? .running : .paused) else {
            throw OCIError("\(command) \(id): the container is \(status.rawValue), not \(pause ? "running" : "paused")")
        }
        // The container's own directories only (an absolute cgroupsPath may name shared parents).
        let own = record.cgroupProcs.map(Files.directory)
        do { try CgroupFreezer.set(pause, directories: own) } catch { throw OCIError("\(command) \(id): \(error.description)") }
        return 0
    }
}
