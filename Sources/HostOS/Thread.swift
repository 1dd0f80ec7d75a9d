import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// A joinable POSIX thread running a Swift closure. vCPUs get their own threads because KVM_RUN
/// blocks, and a blocking call inside Swift's cooperative pool would starve every other task.
public final class HostThread: @unchecked Sendable {
    private final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }

    public let handle: pthread_t
    /// The body's box, released by `join`, on the joining thread: a thread's first `free` makes
    /// glibc map it a malloc arena of its own (~0.05 ms here), and a vCPU thread that never
    /// allocates should not pay that on its way out. Never joined: the box is kept, never freed
    /// under a running thread.
    private var box: Unmanaged<Box>?

    /// Starts `body` on a new thread named `name` (at most 15 characters show in `ps -L`).
    public init(name: String, _ body: @escaping () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Box(body))
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeUnretainedValue().body()
            return nil
        }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw SystemError("pthread_create", name, errno: result)
        }
        handle = thread
        self.box = box
        _ = clinux_set_thread_name(thread, String(name.prefix(15)))
    }

    /// Waits for the thread to end (once; later calls return at once).
    public func join() {
        guard let box else { return }
        pthread_join(handle, nil)
        box.release()
        self.box = nil
    }
}
