import Devices
import HostOS
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// An edge-triggered interrupt delivered through an irqfd: the eventfd KVM watches for the GSI.
/// Writing it from the device thread injects the interrupt without an ioctl or a vCPU exit.
final class IRQFDTrigger: InterruptTrigger, @unchecked Sendable {
    let event: EventFD
    init(_ event: EventFD) { self.event = event }
    func trigger() { event.signal() }
}

/// The thread virtio devices work on, as Firecracker's VMM thread: it sleeps in poll() on every
/// queue's ioeventfd (which KVM signals when the guest writes that queue's index to QueueNotify)
/// and on host descriptors devices read from (a tap), and runs the handler of whatever fired.
/// Disk and network I/O therefore never run on a vCPU thread, and a guest that floods
/// notifications only keeps this thread busy. `stop()` wakes it through its own eventfd and joins
/// it; the VMM stops it after the vCPUs, before the devices go.
final class DeviceThread: @unchecked Sendable {
    /// A descriptor to watch and what to do when it is readable. `watched` is asked before each
    /// wait (a tap is not watched while its frame waits for a guest buffer).
    struct Source {
        let fd: Int32
        let watched: () -> Bool
        let ready: () -> Void
        /// A queue's ioeventfd: its counter is read (rearming it) before `ready` runs.
        let isEventFD: Bool
    }

    private let sources: [Source]
    /// The eventfds this thread owns (the queues' notifications); closed with it.
    private let events: [EventFD]
    private let quit: EventFD
    private var thread: HostThread?

    init(sources: [Source], events: [EventFD]) throws(SystemError) {
        self.sources = sources
        self.events = events
        quit = try EventFD()
    }

    /// A queue's notification: `transport` serves `queue` when `event` fires.
    static func notifier(_ event: EventFD, _ transport: MMIOTransport, queue: Int) -> Source {
        Source(fd: event.fd.rawValue, watched: { true }, ready: { transport.serve(queue: queue) }, isEventFD: true)
    }

    /// Starts the thread (nothing to do, and no thread, without sources).
    func start() throws(SystemError) {
        guard !sources.isEmpty, thread == nil else { return }
        thread = try HostThread(name: "virtio") { [self] in loop() }
    }

    func stop() {
        guard let thread else { return }
        quit.signal()
        thread.join()
        self.thread = nil
    }

    private func loop() {
        var fds = sources.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        fds.append(pollfd(fd: quit.fd.rawValue, events: Int16(POLLIN), revents: 0))
        // Host descriptors that failed for good (a tap whose interface was deleted under the VM
        // reports POLLERR for ever): served once more, then no longer watched, so a broken tap
        // cannot spin this thread.
        var failed = Set<Int>()
        while true {
            for (index, source) in sources.enumerated() {
                // A negative fd is skipped by poll(): how a source is left unwatched for a while.
                fds[index].fd = !failed.contains(index) && source.watched() ? source.fd : -1
            }
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { return }
            if fds[fds.count - 1].revents != 0 { return }
            for (index, source) in sources.enumerated() where fds[index].fd >= 0 && fds[index].revents != 0 {
                if !source.isEventFD && fds[index].revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { failed.insert(index) }
                if source.isEventFD {
                    // Reading the counter rearms the eventfd; a notification that lands after
                    // this read makes it readable again, so none is lost.
                    var count: UInt64 = 0
                    _ = read(source.fd, &count, 8)
                }
                source.ready()
            }
        }
    }
}
