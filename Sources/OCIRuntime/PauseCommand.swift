import Cgroups
import HostOS

/// `pause ID` / `resume ID`: the cgroup freezer (v1 freezer.state, v2 cgroup.freeze).
enum PauseCommand {
    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions, pause: Bool) throws(OCIError) -> Int32 {
        let command = pause ? "pause" : "resume"
        let arguments = try Arguments(rest, flags: [], command: command)
        let id = try arguments.id(command)
        let record = try options.store.load(id)
        guard record.currentStatus == .running else { throw OCIError("\(command) \(id): the container is \(record.currentStatus.rawValue), not running") }
        if let freezer = record.cgroups.first(where: { $0.contains("/freezer/") }) {
            do { try Files.write(freezer + "/freezer.state", Array((pause ? "FROZEN" : "THAWED").utf8)) } catch { throw OCIError("\(command) \(id): \(error.description)") }
        } else if let leaf = record.cgroupProcs.first.map(Files.directory), Files.kind(leaf + "/cgroup.freeze") == .regular {
            do { try Files.write(leaf + "/cgroup.freeze", Array((pause ? "1" : "0").utf8)) } catch { throw OCIError("\(command) \(id): \(error.description)") }
        } else {
            throw OCIError("\(command) \(id): no freezer for this container's cgroup")
        }
        return 0
    }
}
