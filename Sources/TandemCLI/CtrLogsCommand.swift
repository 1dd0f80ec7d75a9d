import ArgumentParser
import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `tandem ctr logs [-f] ID`: what a detached container wrote to stdout and stderr (`docker logs`).
struct CtrLogsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs", abstract: "Print what a detached container wrote (stdout and stderr, in order); -f follows until it ends.")
    @OptionGroup var state: StateRootOption
    @Flag(name: [.customShort("f"), .long], help: "Keep printing what it writes until the container ends.")
    var follow = false
    @Argument(help: "Container id (or a unique prefix) or name.")
    var container: String

    func run() throws {
        let info: Record
        do { info = try state.control.find(container) } catch { throw fail(error.description) }
        guard info.name != nil, !info.ephemeral else { throw fail("container \(info.displayName) was not started with -d: its output went to the terminal that ran it") }
        let path = state.control.store.directory(info.id) + "/log"
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("container \(info.displayName): \(SystemError("open", path))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count > 0 { buffer.withUnsafeBytes { _ = write(1, $0.baseAddress, count) }; continue }
            guard follow, count == 0 else { return }
            // At the end of what it wrote so far: wait for more while it runs, then read the rest.
            guard let now = try? state.control.store.load(info.id), now.status != .stopped, now.isProcessAlive else {
                while true {
                    let rest = read(fd, &buffer, buffer.count)
                    guard rest > 0 else { return }
                    buffer.withUnsafeBytes { _ = write(1, $0.baseAddress, rest) }
                }
            }
            usleep(100_000)
        }
    }
}
