import HostOS

/// What can go wrong opening or driving KVM, each case worded for the person at the terminal:
/// what is wrong, and what to do about it.
public enum KVMError: Error, CustomStringConvertible, Equatable {
    /// The device node does not exist (no KVM module loaded, or not a Linux host).
    case deviceMissing(path: String)
    /// The node exists but this user may not open it.
    case permissionDenied(path: String)
    /// The path opened, but it is not a KVM device (KVM_GET_API_VERSION failed).
    case notKVM(path: String, error: SystemError)
    /// KVM_GET_API_VERSION answered something other than 12.
    case unexpectedAPIVersion(path: String, version: Int32)
    /// A KVM capability this VMM relies on is absent.
    case missingCapability(String)
    /// Any other failed call, named with its argument.
    case system(SystemError)

    public var description: String {
        switch self {
        case .deviceMissing(let path):
            return "\(path) does not exist: KVM is not available on this host. Load kvm_intel or kvm_amd "
                + "(enable VT-x/AMD-V in the firmware, or nested virtualisation for a VM), or use a TCG backend."
        case .permissionDenied(let path):
            return "\(path) is not accessible to this user (EACCES): add the user to the 'kvm' group "
                + "(usermod -aG kvm $USER, then log in again) or run as root."
        case .notKVM(let path, let error):
            return "\(path) is not a KVM device: \(error)"
        case .unexpectedAPIVersion(let path, let version):
            return "\(path) reports KVM API version \(version); Tandem needs version \(KVMSystem.expectedAPIVersion)."
        case .missingCapability(let name):
            return "KVM lacks the capability \(name), which this VMM needs."
        case .system(let error):
            return error.description
        }
    }
}
