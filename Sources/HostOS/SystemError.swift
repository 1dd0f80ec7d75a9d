#if canImport(Glibc)
import Glibc
#endif

/// A failed system call, with the call's name, the argument that identifies what it acted on,
/// and `errno` — printed the way a person debugging it wants: `open(/dev/kvm): Permission denied`.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let call: String
    public let argument: String
    public let errno: Int32

    public init(_ call: String, _ argument: String = "", errno: Int32 = Glibc.errno) {
        self.call = call
        self.argument = argument
        self.errno = errno
    }

    /// The C library's text for `errno` ("Permission denied").
    public var reason: String { String(cString: strerror(errno)) }

    /// The symbolic errno name for the common cases ("EACCES"), so messages can be grepped.
    public var errnoName: String {
        switch errno {
        case EPERM: "EPERM"
        case ENOENT: "ENOENT"
        case EINTR: "EINTR"
        case EIO: "EIO"
        case EBADF: "EBADF"
        case EAGAIN: "EAGAIN"
        case ENOMEM: "ENOMEM"
        case EACCES: "EACCES"
        case EFAULT: "EFAULT"
        case EBUSY: "EBUSY"
        case EEXIST: "EEXIST"
        case ENODEV: "ENODEV"
        case ENOTDIR: "ENOTDIR"
        case EISDIR: "EISDIR"
        case EINVAL: "EINVAL"
        case ENOSPC: "ENOSPC"
        case ENOSYS: "ENOSYS"
        case ENXIO: "ENXIO"
        case E2BIG: "E2BIG"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case ENOTTY: "ENOTTY"
        case EMFILE: "EMFILE"
        case EFBIG: "EFBIG"
        default: "errno \(errno)"
        }
    }

    public var description: String {
        argument.isEmpty ? "\(call): \(reason) (\(errnoName))" : "\(call)(\(argument)): \(reason) (\(errnoName))"
    }
}

/// Runs `body` until it does not fail with EINTR; a result of -1 becomes a `SystemError`.
@inline(__always)
public func retryingOnInterrupt<T: BinaryInteger>(
    _ call: String, _ argument: String = "", _ body: () -> T
) throws(SystemError) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code != EINTR { throw SystemError(call, argument, errno: code) }
    }
}
