import HostOS
import Testing

@Suite("The host's RAM, as --memory and tandem host read it")
struct HostMemoryTests {
    @Test("HostMemory.totalMiB is /proc/meminfo's MemTotal in MiB")
    func totalMatchesMeminfo() throws {
        let text = try #require(Files.readText("/proc/meminfo"))
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("MemTotal:") })
        let kib = try #require(line.split(separator: " ").dropFirst().first.flatMap { Int($0) })
        #expect(HostMemory.totalMiB() == kib / 1024)
    }
}
