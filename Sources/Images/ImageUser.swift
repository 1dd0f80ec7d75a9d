/// The image config's User ("name", "uid", "name:group", "uid:gid", ...) as ids, looked up in
/// the image's own /etc/passwd and /etc/group the way Docker and runc's libcontainer/user do:
/// a name must be there; a number need not be; the user's supplementary groups are the groups
/// that list it (not its primary group, as in Docker); HOME comes from its passwd entry.
public struct ImageUser: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var additionalGids: [UInt32]
    public var home: String

    public static func resolve(_ text: String?, in root: LayeredRoot) throws(ImageError) -> ImageUser {
        guard let text, !text.isEmpty else { return ImageUser(uid: 0, gid: 0, additionalGids: [], home: home(of: 0, in: root) ?? "/root") }
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let passwd = table(root, "/etc/passwd")
        let groups = table(root, "/etc/group")
        var uid: UInt32, gid: UInt32 = 0, name: String?, home = "/"
        if let number = UInt32(parts[0]) {
            uid = number
            if let entry = passwd.first(where: { $0.count > 3 && UInt32($0[2]) == number }) {
                name = entry[0]
                gid = UInt32(entry[3]) ?? 0
                home = entry.count > 5 ? entry[5] : "/"
            }
        } else {
            guard let entry = passwd.first(where: { $0.count > 3 && $0[0] == parts[0] }), let number = UInt32(entry[2]) else {
                throw ImageError("config.User \(text): no user \(parts[0]) in the image's /etc/passwd")
            }
            uid = number
            name = entry[0]
            gid = UInt32(entry[3]) ?? 0
            home = entry.count > 5 ? entry[5] : "/"
        }
        if parts.count == 2 {
            if let number = UInt32(parts[1]) {
                gid = number
            } else if let entry = groups.first(where: { $0.count > 2 && $0[0] == parts[1] }), let number = UInt32(entry[2]) {
                gid = number
            } else {
                throw ImageError("config.User \(text): no group \(parts[1]) in the image's /etc/group")
            }
        }
        var additional: [UInt32] = []
        if let name {
            for entry in groups where entry.count > 3 {
                guard entry[3].split(separator: ",").contains(Substring(name)), let number = UInt32(entry[2]) else { continue }
                if !additional.contains(number) { additional.append(number) }
            }
        }
        return ImageUser(uid: uid, gid: gid, additionalGids: additional, home: home.isEmpty ? "/" : home)
    }

    static func home(of uid: UInt32, in root: LayeredRoot) -> String? {
        table(root, "/etc/passwd").first { $0.count > 5 && UInt32($0[2]) == uid }.map { $0[5] }
    }

    /// A colon-separated file's lines as fields (comments and blank lines skipped).
    static func table(_ root: LayeredRoot, _ path: String) -> [[String]] {
        guard let bytes = root.contents(path) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
            line.hasPrefix("#") ? nil : line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        }
    }
}
