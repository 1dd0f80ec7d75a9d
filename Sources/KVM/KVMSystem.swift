import CKVM
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The KVM subsystem, reached through `/dev/kvm`: capability queries and VM creation.
public final class KVMSystem: @unchecked Sendable {
    /// The stable KVM API version (it has been 12 since Linux 2.6.22).
    public static let expectedAPIVersion: Int32 = 12
    public static let defaultPath = "/dev/kvm"

    public let fd: FileDescriptor
    public let path: String
    public let apiVersion: Int32

    /// Opens the KVM device and checks its API version.
    public init(path: String = KVMSystem.defaultPath) throws(KVMError) {
        let raw = Glibc.open(path, O_RDWR | O_CLOEXEC)
        guard raw >= 0 else {
            let code = errno
            switch code {
            case ENOENT, ENODEV, ENXIO: throw .deviceMissing(path: path)
            case EACCES, EPERM: throw .permissionDenied(path: path)
            default: throw .system(SystemError("open", path, errno: code))
            }
        }
        fd = FileDescriptor(adopting: raw, label: path)
        self.path = path
        apiVersion = ckvm_get_api_version(raw)
        if apiVersion < 0 { throw .notKVM(path: path, error: SystemError("ioctl KVM_GET_API_VERSION", path)) }
        guard apiVersion == KVMSystem.expectedAPIVersion else {
            throw .unexpectedAPIVersion(path: path, version: apiVersion)
        }
    }

    /// KVM_CHECK_EXTENSION on the system fd: 0 when absent, otherwise > 0 (sometimes a count).
    public func checkExtension(_ capability: Int32) -> Int32 {
        max(0, ckvm_check_extension(fd.rawValue, capability))
    }

    /// Bytes of the per-vCPU shared `struct kvm_run` mapping.
    public func vcpuMmapSize() throws(KVMError) -> Int {
        let size = ckvm_get_vcpu_mmap_size(fd.rawValue)
        guard size > 0 else { throw .system(SystemError("ioctl KVM_GET_VCPU_MMAP_SIZE", path)) }
        return Int(size)
    }

    /// Creates a VM (KVM_CREATE_VM, default machine type).
    public func createVM() throws(KVMError) -> VirtualMachine {
        let raw = ckvm_create_vm(fd.rawValue)
        guard raw >= 0 else { throw .system(SystemError("ioctl KVM_CREATE_VM", path)) }
        return try VirtualMachine(system: self, fd: FileDescriptor(adopting: raw, label: "vm"))
    }

    /// KVM_GET_SUPPORTED_CPUID: the CPUID leaves KVM can present to a guest on this host.
    public func supportedCPUID() throws(KVMError) -> [kvm_cpuid_entry2] {
        var capacity: UInt32 = 128
        while capacity <= 4096 {
            guard let cpuid = ckvm_cpuid2_alloc(capacity) else { throw .system(SystemError("calloc", "kvm_cpuid2", errno: ENOMEM)) }
            defer { free(cpuid) }
            if ckvm_get_supported_cpuid(fd.rawValue, cpuid) == 0 {
                return Array(UnsafeBufferPointer(start: ckvm_cpuid2_entries(cpuid), count: Int(cpuid.pointee.nent)))
            }
            guard errno == E2BIG else { throw .system(SystemError("ioctl KVM_GET_SUPPORTED_CPUID", path)) }
            capacity *= 2
        }
        throw .system(SystemError("ioctl KVM_GET_SUPPORTED_CPUID", path, errno: E2BIG))
    }
}
