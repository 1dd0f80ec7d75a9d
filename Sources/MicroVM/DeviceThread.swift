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
/// and serves the queue whose eventfd fired. Disk and network I/O therefore never run on a vCPU
/// thread, and a guest that floods notifications only keeps this thread busy. `stop()` wakes it
/// through its own eventfd and joins it; the VMM stops it after the vCPUs, before the devices go.
final class DeviceThread: @unchecked Sendable {
    /// One queue's notification: the transport and queue to serve when `event` fires.
    struct Notifier {
        let transport: MMIOTransport
        let queue: Int
        let event: EventFD
    }

    private let notifiers: [Notifier]
    private let quit: EventFD
    private var thread: HostThread?

    init(_ notifiers: [Notifier]) throws(SystemError) {
        self.notifiers = notifiers
        quit = try EventFD()
    }

    /// Starts the thread (nothing to do, and no thread, without notifiers).
    func start() throws(SystemError) {
        guard !notifiers.isEmpty, thread == nil else { return }
        thread = try HostThread(name: "virtio") { [self] in loop() }
    }

    func stop() {
        guard let thread else { return }
        quit.signal()
        thread.join()
        self.thread = nil
    }

    private func loop() {
        var fds = notifiers.map { pollfd(fd: $0.event.fd.rawValue, events: Int16(POLLIN), revents: 0) }
        fds.append(pollfd(fd: quit.fd.rawValue, events: Int16(POLLIN), revents: 0))
        while true {
            guard poll(&fds, nfds_t(fds.count), -1) >= 0 || errno == EINTR else { return }
            if fds[fds.count - 1].revents != 0 { return }
            for (index, notifier) in notifiers.enumerated() where fds[index].revents != 0 {
                // Reading the counter rearms the eventfd; a notification that lands after this
                // read makes it readable again, so none is lost.
                var count: UInt64 = 0
                _ = read(fds[index].fd, &count, 8)
                notifier.transport.serve(queue: notifier.queue)
            }
        }
    }
}
