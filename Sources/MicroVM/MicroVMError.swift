import BootLoader
import Devices
import GuestMemory
import HostOS
import KVM

/// Why a VM could not be built or started. Each message names the input and what to do.
public enum MicroVMError: Error, CustomStringConvertible {
    case kvm(KVMError)
    case memory(GuestMemoryError)
    case boot(BootLoaderError)
    case bus(BusOverlapError)
    case system(SystemError)
    case invalidMemory(requestedMiB: Int, reason: String)
    case invalidVCPUs(requested: Int, reason: String)
    /// A snapshot file (or directory) that cannot be restored: `path` and what is wrong with it.
    case snapshot(path: String, problem: String)

    public var description: String {
        switch self {
        case .kvm(let error): error.description
        case .memory(let error): error.description
        case .boot(let error): error.description
        case .bus(let error): error.description
        case .system(let error): error.description
        case .invalidMemory(let requested, let reason): "--memory \(requested): \(reason)"
        case .invalidVCPUs(let requested, let reason): "--vcpus \(requested): \(reason)"
        case .snapshot(let path, let problem): "snapshot \(path): \(problem)"
        }
    }
}
