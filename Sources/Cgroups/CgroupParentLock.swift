import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Keeps Tandem from removing a parent cgroup (`tandem`) under a runtime that is not Tandem's.
///
/// Tandem removes a parent it made once its last container there ends. crun and runc, started by
/// `tandem run --as crun|runc` with `cgroupsPath` `/tandem/ID`, make their cgroup with `mkdir -p`
/// and no retry: a Tandem container ending between their two mkdirs takes the then-empty parent
/// away, and their start fails ("mkdir /sys/fs/cgroup/devices/tandem/ID: no such file or
/// directory" — 3 of 150 runc starts beside two loops of `tandem ctr run`). Tandem's own engine
/// retries that mkdir (`CgroupFile.makeLeaf`) and needs no lock.
///
/// A launcher of such a runtime holds this lock shared while the runtime runs; a parent is removed
/// only by whoever gets it exclusively without waiting. The launcher, once its runtime is done,
/// removes the parents itself (the last one out does), in every hierarchy the runtime may have
/// used — runc makes the parent in all of them, Tandem only in those it puts containers in.
public enum CgroupParentLock {
    /// A lock file where the FHS puts them; created once, never removed (as `/run/tandem-net/lock`).
    public static let path = "/run/lock/tandem-cgroup-parents.lock"

    /// Takes the lock shared (waiting while a parent is being removed); the descriptor to pass to
    /// `releaseAndRemove`, or nil when the lock file cannot be opened (an unprivileged user: its
    /// cgroups are under a delegated parent of its own).
    public static func holdShared(lock: String = path) -> Int32? {
        let fd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        while flock(fd, LOCK_SH) != 0 && errno == EINTR {}
        return fd
    }

    /// Releases a shared hold and removes `parent` from every hierarchy under `root` where it is
    /// empty, unless another launcher still holds the lock (it will, when it is done).
    public static func releaseAndRemove(_ fd: Int32?, parent: String, root: String = "/sys/fs/cgroup", lock: String = path) {
        if let fd { close(fd) }
        whenUnused(lock: lock) {
            rmdir(root + "/" + parent)  // a pure v2 host
            for hierarchy in Files.list(root) { rmdir(root + "/" + hierarchy + "/" + parent) }
        }
    }

    /// Runs `removal` (rmdir of parents) unless a foreign runtime's launcher holds the lock. Without
    /// a lock file to open (unprivileged), there is no such launcher to wait for.
    static func whenUnused(lock: String = path, _ removal: () -> Void) {
        let fd = open(lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return removal() }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { return }
        removal()
    }
}
