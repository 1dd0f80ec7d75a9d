import CLibvirt
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// A libvirt failure: what Tandem was doing, and libvirt's own message.
public struct LibvirtError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// `doing`: libvirt's last error message (the thread-local one the failed call set).
    static func last(_ doing: String) -> LibvirtError {
        let message = virGetLastErrorMessage().map { String(cString: $0) } ?? "unknown libvirt error"
        return LibvirtError("\(doing): \(message)")
    }
}

/// A connection to a libvirt daemon (`qemu:///system`, `qemu+ssh://host/system`, `test:///default`).
public final class LibvirtConnection: @unchecked Sendable {
    let handle: virConnectPtr
    public let uri: String

    /// Opens `uri`. libvirt's default error printer is silenced: errors come back as messages.
    public init(uri: String) throws(LibvirtError) {
        virSetErrorFunc(nil, { _, _ in })
        guard let handle = virConnectOpen(uri) else {
            var error = LibvirtError.last("cannot connect to libvirt at \(uri)")
            if uri.hasPrefix("qemu:///") {
                let text = error.description
                if text.contains("No such file") || text.contains("Failed to connect socket") {
                    error = LibvirtError(text + " — is the libvirt daemon running? Start it with `scripts/libvirtd.sh up` (or `libvirtd -d`)")
                } else if text.contains("Permission denied") {
                    error = LibvirtError(text + " — run as root or as a member of the libvirt group")
                }
            }
            throw error
        }
        self.handle = handle
        self.uri = uri
    }

    deinit { virConnectClose(handle) }

    /// Starts a transient domain from `xml` (libvirt validates it; it vanishes when it stops).
    public func createTransient(_ xml: String) throws(LibvirtError) -> LibvirtDomain {
        guard let domain = virDomainCreateXML(handle, xml, 0) else { throw LibvirtError.last("libvirt could not start the domain") }
        return LibvirtDomain(handle: domain)
    }

    /// Defines a domain without starting it, then undefines it: libvirt's validation of `xml`.
    public func validate(_ xml: String) throws(LibvirtError) {
        guard let domain = virDomainDefineXMLFlags(handle, xml, UInt32(VIR_DOMAIN_DEFINE_VALIDATE.rawValue)) else {
            throw LibvirtError.last("libvirt refused the domain XML")
        }
        virDomainUndefine(domain)
        virDomainFree(domain)
    }

    /// Every domain (running or defined).
    public func domains() -> [LibvirtDomain] {
        var list: UnsafeMutablePointer<virDomainPtr?>?
        let count = virConnectListAllDomains(handle, &list, 0)
        guard count > 0, let list else { return [] }
        defer { free(list) }
        return (0..<Int(count)).compactMap { list[$0].map { LibvirtDomain(handle: $0) } }
    }

    public func lookup(name: String) -> LibvirtDomain? {
        virDomainLookupByName(handle, name).map { LibvirtDomain(handle: $0) }
    }
}

/// One domain handle (freed with the object).
public final class LibvirtDomain: @unchecked Sendable {
    let handle: virDomainPtr
    init(handle: virDomainPtr) { self.handle = handle }
    deinit { virDomainFree(handle) }

    public var name: String { virDomainGetName(handle).map { String(cString: $0) } ?? "?" }
    public var isActive: Bool { virDomainIsActive(handle) == 1 }
    public var isPersistent: Bool { virDomainIsPersistent(handle) == 1 }

    /// Stops it at once (like pulling the plug); a transient domain disappears.
    public func destroy() throws(LibvirtError) {
        guard virDomainDestroy(handle) == 0 else { throw LibvirtError.last("virDomainDestroy(\(name))") }
    }

    public func undefine() { virDomainUndefine(handle) }

    /// Tandem's owner element, if this domain has one.
    public func metadata(namespace: String) -> String? {
        guard let text = virDomainGetMetadata(handle, Int32(VIR_DOMAIN_METADATA_ELEMENT.rawValue), namespace, 0) else { return nil }
        defer { free(text) }
        return String(cString: text)
    }

    public struct Info: Sendable {
        public var state: Int
        public var maxMemoryKiB: UInt64
        public var memoryKiB: UInt64
        public var vcpus: Int
        public var cpuTimeNanoseconds: UInt64
    }

    public func info() -> Info? {
        var info = virDomainInfo()
        guard virDomainGetInfo(handle, &info) == 0 else { return nil }
        return Info(state: Int(info.state), maxMemoryKiB: UInt64(info.maxMem), memoryKiB: UInt64(info.memory),
                    vcpus: Int(info.nrVirtCpu), cpuTimeNanoseconds: UInt64(info.cpuTime))
    }
}
