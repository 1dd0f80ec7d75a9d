import Cgroups
import Foundation
import Testing

@Suite("the parent cgroup lock: no parent goes from under a foreign runtime's launcher")
struct CgroupParentLockTests {
    /// A fixture cgroup root: hierarchies `a` and `b` with an empty `tandem`, `c` with one that
    /// still holds a container. Its own lock file, so the host's Tandem runs are not held up.
    static func fixture() throws -> (root: String, lock: String) {
        let base = NSTemporaryDirectory() + "tandem-parent-lock-\(getpid())-\(UUID().uuidString.prefix(8))"
        for directory in ["a/tandem", "b/tandem", "c/tandem/container"] {
            try FileManager.default.createDirectory(atPath: base + "/root/" + directory, withIntermediateDirectories: true)
        }
        return (base + "/root", base + "/lock")
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    @Test("while another launcher holds it shared, a release removes nothing; the last one out removes every empty parent and keeps a used one")
    func lastOneOutRemoves() throws {
        let (root, lock) = try Self.fixture()
        defer { try? FileManager.default.removeItem(atPath: (root as NSString).deletingLastPathComponent) }
        let first = try #require(CgroupParentLock.holdShared(lock: lock))
        let second = try #require(CgroupParentLock.holdShared(lock: lock))
        CgroupParentLock.releaseAndRemove(first, parent: "tandem", root: root, lock: lock)
        #expect(Self.exists(root + "/a/tandem") && Self.exists(root + "/b/tandem"), "removed while another launcher's runtime may be making its cgroup there")
        CgroupParentLock.releaseAndRemove(second, parent: "tandem", root: root, lock: lock)
        #expect(!Self.exists(root + "/a/tandem") && !Self.exists(root + "/b/tandem"), "the last launcher out left empty parents")
        #expect(Self.exists(root + "/c/tandem/container"), "a parent that still holds a container was removed")
    }
}
