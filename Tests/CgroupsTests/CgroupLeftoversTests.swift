import Cgroups
import Testing

@Suite("cgroup leftovers")
struct CgroupLeftoversTests {
    @Test("leaves are the directories nothing listed sits below: a container's own, not its parents")
    func leaves() {
        let directories = ["/sys/fs/cgroup/memory/machine", "/sys/fs/cgroup/memory/machine/pod", "/sys/fs/cgroup/memory/machine/pod/c1",
                           "/sys/fs/cgroup/pids/machine", "/sys/fs/cgroup/pids/machine/pod/c1", "/sys/fs/cgroup/memory/machine/pod-2"]
        #expect(CgroupLeftovers.leaves(directories) == ["/sys/fs/cgroup/memory/machine/pod-2", "/sys/fs/cgroup/memory/machine/pod/c1",
                                                         "/sys/fs/cgroup/pids/machine/pod/c1"])
    }
}
