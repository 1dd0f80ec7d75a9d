import Foundation
import HostOS
@testable import MicroVM
import Testing

@Suite("DeviceThread: the virtio device thread's loop")
struct DeviceThreadTests {
    final class Counter: @unchecked Sendable {
        private let lock = Lock()
        private var value = 0
        func add() { lock.withLock { value += 1 } }
        var count: Int { lock.withLock { value } }
    }

    @Test("a host descriptor that fails for good (its peer gone: POLLHUP) is served once more, then no longer watched: no spinning")
    func failedSourceNotSpun() throws {
        var pair: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &pair) == 0)
        defer { close(pair[0]) }
        close(pair[1])  // the "tap" is gone: pair[0] reports POLLHUP from now on
        let calls = Counter()
        let thread = try DeviceThread(sources: [DeviceThread.Source(fd: pair[0], watched: { true }, ready: { calls.add() }, isEventFD: false)], events: [])
        try thread.start()
        Thread.sleep(forTimeInterval: 0.3)
        thread.stop()
        #expect(calls.count >= 1 && calls.count <= 2, "served \(calls.count) times in 0.3 s")
    }

    @Test("a queue's eventfd: each notification is served, and stop() ends the thread")
    func notifications() throws {
        let event = try EventFD()
        let calls = Counter()
        let thread = try DeviceThread(sources: [DeviceThread.Source(fd: event.fd.rawValue, watched: { true }, ready: { calls.add() }, isEventFD: true)], events: [event])
        try thread.start()
        for _ in 0..<3 {
            event.signal()
            for _ in 0..<100 where calls.count == 0 { Thread.sleep(forTimeInterval: 0.01) }
            Thread.sleep(forTimeInterval: 0.05)
        }
        thread.stop()
        #expect(calls.count == 3, "served \(calls.count) of 3 notifications")
    }
}
