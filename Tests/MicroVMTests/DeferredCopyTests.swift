import BootLoader
import Foundation
import GuestMemory
import HostOS
import Testing

/// A file in a fresh temporary directory, removed with it.
private final class TemporaryFile {
    let directory: URL
    let path: String
    init(_ bytes: [UInt8]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-deferred-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        path = directory.appendingPathComponent("image").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
    deinit { try? FileManager.default.removeItem(at: directory) }
}

/// userfaultfd for kernel-mode faults needs privilege where vm.unprivileged_userfaultfd is 0.
private let deferrable: Bool = {
    guard let memory = try? GuestMemory(ranges: [(GuestAddress(0), 1 << 20)]) else { return false }
    return memory.deferFill(GuestAddress(0), length: GuestMemory.pageSize) != nil
}()

@Suite("An initrd's copy deferred until the guest runs (userfaultfd)",
       .enabled(if: deferrable, "needs userfaultfd for kernel faults (root, or vm.unprivileged_userfaultfd=1)"))
struct DeferredCopyTests {
    static let page = GuestMemory.pageSize

    static func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ Int(seed)) | 1 } }

    @Test("a reader of a deferred page waits until it is filled, then sees the filled bytes")
    func readerWaits() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 1 << 20)])
        let at = GuestAddress(UInt64(8 * Self.page))
        let fill = try #require(memory.deferFill(at, length: 4 * Self.page))
        let reader = try memory.hostPointer(at + UInt64(3 * Self.page), length: 1)
        let seen = Lock()
        var value: UInt8 = 0, readAt: UInt64 = 0
        let thread = try HostThread(name: "reader") {
            let byte = reader.load(as: UInt8.self)  // waits in the kernel until the page is filled
            seen.withLock { value = byte; readAt = Clock.monotonicNanoseconds() }
        }
        usleep(50_000)
        #expect(seen.withLock { readAt } == 0, "the reader must still be waiting")
        let filledAt = Clock.monotonicNanoseconds()
        let content = Self.bytes(4 * Self.page, seed: 5)
        try content.withUnsafeBytes { try fill.fill(at: 0, from: $0.baseAddress!, count: 4 * Self.page) }
        thread.join()
        #expect(seen.withLock { value } == content[3 * Self.page])
        #expect(seen.withLock { readAt } >= filledAt)
        #expect(try memory.read(4 * Self.page, at: at) == content)
    }

    @Test("released unfilled, the range reads as zeros and nobody waits")
    func releasedUnfilled() throws {
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 1 << 20)])
        let at = GuestAddress(UInt64(8 * Self.page))
        var fill = memory.deferFill(at, length: 2 * Self.page)
        #expect(fill != nil)
        fill = nil
        #expect(try memory.read(2 * Self.page, at: at) == [UInt8](repeating: 0, count: 2 * Self.page))
    }

    @Test("the Linux loader defers a file initrd's copy; completed, guest RAM is what a copy gives")
    func loaderDefersInitrd() throws {
        let kernel = try TemporaryFile(syntheticBzImage())
        let initrd = try TemporaryFile(Self.bytes(5 * Self.page + 7, seed: 4))
        func load(deferring: Bool) throws -> (LinuxBoot, [UInt8]) {
            let memory = try GuestMemory(ranges: [(GuestAddress(0), 64 << 20)])
            let boot = try LinuxLoader.load(kernel: try FileImage(path: kernel.path, what: "kernel", defers: deferring),
                                            initrd: try FileImage(path: initrd.path, what: "initrd", defers: deferring),
                                            commandLine: "console=ttyS0", into: memory)
            for copy in boot.pendingCopies { try copy.complete() }
            let placed = try #require(boot.initrd)
            // The page's tail after the file's end is zero either way.
            return (boot, try memory.read(placed.size + (Self.page - placed.size % Self.page), at: placed.address))
        }
        let (deferredBoot, deferredBytes) = try load(deferring: true)
        let (copiedBoot, copiedBytes) = try load(deferring: false)
        #expect(deferredBoot == copiedBoot)
        #expect(deferredBytes == copiedBytes)
        #expect(deferredBytes.prefix(5 * Self.page + 7) == Self.bytes(5 * Self.page + 7, seed: 4)[...])
        #expect(deferredBoot.pendingCopies.map(\.name) == [initrd.path])
        #expect(deferredBoot.pendingCopies.first?.address == deferredBoot.initrd?.address)
        #expect(copiedBoot.pendingCopies.isEmpty)
    }

    @Test("a file that shrank before its copy completed: an error naming it")
    func shrank() throws {
        let file = try TemporaryFile(Self.bytes(4 * Self.page, seed: 3))
        let memory = try GuestMemory(ranges: [(GuestAddress(0), 1 << 20)])
        let pending = try #require(try FileImage(path: file.path, what: "initrd").place(
            from: 0, into: memory, at: GuestAddress(UInt64(32 * Self.page)), deferrable: true))
        _ = truncate(file.path, off_t(Self.page))
        #expect(throws: BootLoaderError.self) { try pending.complete() }
        do { try pending.complete() } catch {
            Issue.record("a second complete must be a no-op: \(error)")
        }
        let fresh = try #require(try FileImage(path: file.path, what: "initrd").place(
            from: 0, into: memory, at: GuestAddress(UInt64(64 * Self.page)), deferrable: true))
        _ = truncate(file.path, 0)
        do { try fresh.complete(); Issue.record("a copy from an emptied file must fail") } catch {
            #expect(error.description.contains(file.path))
        }
    }
}
