import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// How a new user namespace gets its uid and gid maps (user_namespaces(7)), decided before the
/// child is cloned and written once it is, before its first go-ahead.
package enum IDMaps: Equatable {
    /// Root: any ranges, written directly.
    case privileged
    /// Rootless, one mapping each of the caller's own uid and gid (`spec --rootless`): a user may
    /// write those itself, the gid map only once `setgroups` is denied in the namespace — so the
    /// container's process keeps the caller's supplementary groups (unmapped: shown as nobody).
    case ownIDs
    /// Rootless, other ranges: the setuid helpers of the shadow suite (package uidmap), which
    /// allow what /etc/subuid and /etc/subgid give this user, as podman and rootless runc use them.
    case helpers(newuidmap: String, newgidmap: String)

    /// The way for `config`'s mappings, or an error naming the field when there is none.
    package static func plan(_ config: OCIConfig) throws(OCIError) -> IDMaps {
        let uid = geteuid(), gid = getegid()
        if uid == 0 { return .privileged }
        guard config.newNamespace("user") || config.has("user") else {
            throw OCIError("config.json: linux.namespaces: running as uid \(uid) (rootless), a container needs a user namespace of its own; `tandem-runtime spec --rootless` writes a config with one")
        }
        guard config.newNamespace("user") else { return .privileged }  // joined by path: nothing to write
        let own = config.uidMappings.count == 1 && config.uidMappings[0].hostID == uid && config.uidMappings[0].size == 1
            && config.gidMappings.count == 1 && config.gidMappings[0].hostID == gid && config.gidMappings[0].size == 1
        if own {
            if let groups = config.process?.user.additionalGids, !groups.isEmpty {
                throw OCIError("config.json: process.user.additionalGids: a rootless container that maps only gid \(gid) cannot set groups (setgroups is denied in its namespace); map ranges from /etc/subgid instead")
            }
            return .ownIDs
        }
        let directories = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        guard let newuidmap = directories.map({ $0 + "/newuidmap" }).first(where: { access($0, X_OK) == 0 }),
              let newgidmap = directories.map({ $0 + "/newgidmap" }).first(where: { access($0, X_OK) == 0 }) else {
            throw OCIError("config.json: linux.uidMappings: mapping more than uid \(uid)'s own id needs newuidmap and newgidmap (package uidmap) and ranges for this user in /etc/subuid and /etc/subgid")
        }
        return .helpers(newuidmap: newuidmap, newgidmap: newgidmap)
    }

    /// Writes the maps of `pid`'s user namespace.
    package static func write(_ config: OCIConfig, to pid: pid_t, how: IDMaps) throws(OCIError) {
        let maps = [("uid_map", "uidMappings", config.uidMappings), ("gid_map", "gidMappings", config.gidMappings)]
        switch how {
        case .privileged, .ownIDs:
            if how == .ownIDs {
                do { try Files.write("/proc/\(pid)/setgroups", Array("deny".utf8)) } catch {
                    throw OCIError("config.json: linux.gidMappings: denying setgroups first: \(error.reason)")
                }
            }
            for (file, field, mappings) in maps {
                let text = mappings.map { "\($0.containerID) \($0.hostID) \($0.size)\n" }.joined()
                do { try Files.write("/proc/\(pid)/\(file)", Array(text.utf8)) } catch {
                    throw OCIError("config.json: linux.\(field): the kernel refused them: \(error.reason)")
                }
            }
        case .helpers(let newuidmap, let newgidmap):
            for ((_, field, mappings), helper) in zip(maps, [newuidmap, newgidmap]) {
                let arguments = [String(pid)] + mappings.flatMap { [String($0.containerID), String($0.hostID), String($0.size)] }
                let result: Subprocess.Result
                do { result = try Subprocess.run(helper, arguments) } catch { throw OCIError("config.json: linux.\(field): \(error.description)") }
                guard result.status == 0 else {
                    let said = result.output.split(separator: "\n").last.map(String.init) ?? "exit status \(result.status)"
                    throw OCIError("config.json: linux.\(field): \(helper) refused them (they must be within this user's ranges in /etc/sub\(field.hasPrefix("uid") ? "uid" : "gid")): \(said)")
                }
            }
        }
    }
}
