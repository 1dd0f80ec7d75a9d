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

    /// Starts `body` on a new thread named `name` (at most 15 characters show in `ps -L`).
    public init(name: String, _ body: @escaping () -> Void) throws(SystemError) {
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let result = pthread_create(&thread, nil, { argument in
            let box = Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue()
            box.body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw SystemError("pthread_create", name, errno: result)
        }
        handle = thread
        _ = clinux_set_thread_name(thread, String(name.prefix(15)))
    }

    public func join() { pthread_join(handle, nil) }
}
