#if canImport(Glibc)
import Glibc
#endif

/// Tandem's snapshot state file (`DIR/state`; the guest RAM is `DIR/memory`), read and written
/// here with no KVM in sight: the reader is fuzzed on its own (Fuzz/SnapshotFuzz.swift), and
/// everything in a state file is hostile until it has passed `decode`.
///
/// Layout, little-endian (docs/snapshots.md):
///
///     magic "TANDEMVM" | version u32 | payload length u64 | payload | CRC-64/XZ of all before it (u64)
///
/// The payload is the machine record, the host record, the vCPUs (each: id, KVM state blobs, XSAVE
/// area, MSRs, CPUID), the VM-wide KVM blobs, and the devices' states. A KVM blob is stored as
/// the kernel hands it out (`kind`, bytes); whoever applies it checks its size against this build's
/// structure. The CRC (Firecracker's snapshot files carry one too) catches a truncated or damaged
/// file before any of it is believed; it is not a signature — whoever can write the directory can
/// write a valid file, which is why every field is also range-checked.
public struct SnapshotState: Equatable, Sendable {
    public static let magic: [UInt8] = Array("TANDEMVM".utf8)
    /// Bumped whenever the layout changes; a file of another version is refused, by name.
    public static let version: UInt32 = 2
    /// Upper bounds a hostile file cannot push past (each far above what a VM of Tandem's has).
    public static let maximumVCPUs = 256, maximumBlobBytes = 1 << 20, maximumMSRs = 4096,
                      maximumDevices = 64, maximumStringBytes = 4096, maximumRanges = 16, maximumBlobs = 64

    public var machine: MachineRecord
    public var host: HostRecord
    public var vcpus: [VCPURecord]
    /// The VM's own KVM state: its clock, and with an in-kernel irqchip the PICs, IOAPIC and PIT.
    public var vmBlobs: [Blob]
    public var devices: [DeviceRecord]

    public init(machine: MachineRecord, host: HostRecord, vcpus: [VCPURecord], vmBlobs: [Blob], devices: [DeviceRecord]) {
        self.machine = machine
        self.host = host
        self.vcpus = vcpus
        self.vmBlobs = vmBlobs
        self.devices = devices
    }

    /// What the guest was and how its RAM lies in the memory file.
    public struct MachineRecord: Equatable, Sendable {
        /// 0: a tiny guest; 1: Linux (in-kernel irqchip and PIT, i8042, CMOS).
        public var kind: UInt8
        /// The image it was started from (the kernel, for Linux), for `describe` and reports.
        public var guest: String
        /// Linux: the kernel command line it booted with (how it reboots depends on it).
        public var commandLine: String
        public var memoryMiB: UInt32
        /// Guest RAM ranges; range N's bytes follow range N-1's in the memory file.
        public var ranges: [RAMRange]
        /// The disks, in virtio-mmio slot order: a restore opens the same files.
        public var drives: [Drive]
        /// The network interfaces, in slot order after the disks: a restore binds each to its tap again.
        public var nets: [Net]
        /// The vsock device, in the slot after the interfaces: a restore listens at its path again.
        public var vsock: Vsock?

        public init(kind: UInt8, guest: String, commandLine: String = "", memoryMiB: UInt32, ranges: [RAMRange], drives: [Drive] = [], nets: [Net] = [],
                    vsock: Vsock? = nil) {
            self.kind = kind
            self.guest = guest
            self.drives = drives
            self.nets = nets
            self.vsock = vsock
            self.commandLine = commandLine
            self.memoryMiB = memoryMiB
            self.ranges = ranges
        }

        /// The memory file's size the ranges need.
        public var memoryBytes: UInt64 { ranges.reduce(0) { $0 + $1.size } }
    }

    public struct Drive: Equatable, Sendable {
        public var path: String
        public var readOnly: Bool
        public init(path: String, readOnly: Bool) {
            self.path = path
            self.readOnly = readOnly
        }
    }

    /// A virtio-net interface: the tap it was bound to and the MAC address its driver read.
    public struct Net: Equatable, Sendable {
        /// Who made the tap: Tandem (`--net tap`: `tandemN`, the host 172.30.N.1/24, the guest
        /// 172.30.N.2, which the guest's RAM holds), the user (`--net tap=NAME`, addressed by them)
        /// or Tandem for its bridge (`--net bridge`: `tvID` on the bridge, the guest's `address`
        /// leased).
        public enum Origin: UInt8, Sendable { case tandem = 0, user = 1, bridge = 2 }
        public var origin: Origin
        public var name: String
        public var mac: [UInt8]
        /// The guest's leased IPv4 address on the bridge (empty for the other origins).
        public var address: String
        public init(origin: Origin, name: String, mac: [UInt8], address: String = "") {
            self.origin = origin
            self.name = name
            self.mac = mac
            self.address = address
        }

        /// Whether `text` is a dotted IPv4 address (four numbers 0 to 255, no leading zeros).
        public static func isIPv4(_ text: String) -> Bool {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4 && parts.allSatisfy { part in
                guard let value = Int(part), (0...255).contains(value) else { return false }
                return part == String(value)
            }
        }

        /// The MAC address as 02:ab:...
        public var macText: String {
            mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
        }

        /// N of a Tandem tap's name `tandemN` (0...255, no leading zero), or nil.
        public static func tandemIndex(_ name: String) -> Int? {
            guard name.hasPrefix("tandem"), let index = Int(name.dropFirst(6)), (0...255).contains(index), name == "tandem\(index)" else { return nil }
            return index
        }

        /// Whether `name` can be an interface's: 1 to 15 letters, digits, '-', '_' or '.'.
        public static func isInterfaceName(_ name: String) -> Bool {
            !name.isEmpty && name.utf8.count < 16 && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        }
    }

    /// A virtio-vsock device: the Unix socket host programs reach the guest through, and the
    /// guest's CID. Its connections are not saved: a restore resets them (docs/snapshots.md).
    public struct Vsock: Equatable, Sendable {
        public var path: String
        public var guestCID: UInt64
        /// The longest socket path (sockaddr_un's sun_path holds 108 bytes with the NUL).
        public static let maximumPathBytes = 107
        public init(path: String, guestCID: UInt64) {
            self.path = path
            self.guestCID = guestCID
        }
    }

    public struct RAMRange: Equatable, Sendable {
        public var start: UInt64
        public var size: UInt64
        public init(start: UInt64, size: UInt64) {
            self.start = start
            self.size = size
        }
    }

    /// The CPU the snapshot was taken on: a restore where the vendor differs,
    /// a feature bit the guest may have used is missing, or the XSAVE area has another size, is
    /// refused before any guest code runs.
    public struct HostRecord: Equatable, Sendable {
        /// CPUID leaf 0's vendor string ("AuthenticAMD", "GenuineIntel").
        public var vendor: String
        /// The host's CPUID leaf 1 ECX, EDX and leaf 7 EBX, ECX, EDX, in that order.
        public var features: [UInt32]
        public var xsaveBytes: UInt32

        public init(vendor: String, features: [UInt32], xsaveBytes: UInt32) {
            self.vendor = vendor
            self.features = features
            self.xsaveBytes = xsaveBytes
        }

        public static let featureNames = ["CPUID.1:ECX", "CPUID.1:EDX", "CPUID.7.0:EBX", "CPUID.7.0:ECX", "CPUID.7.0:EDX"]
    }

    /// One KVM structure as KVM_GET_* handed it out (`kind`: CKVM_STATE_*).
    public struct Blob: Equatable, Sendable {
        public var kind: Int32
        public var bytes: [UInt8]
        public init(kind: Int32, bytes: [UInt8]) {
            self.kind = kind
            self.bytes = bytes
        }
    }

    public struct MSR: Equatable, Sendable {
        public var index: UInt32
        public var value: UInt64
        public init(index: UInt32, value: UInt64) {
            self.index = index
            self.value = value
        }
    }

    public struct VCPURecord: Equatable, Sendable {
        public var id: UInt32
        /// Registers, special registers, XCRs, debug registers, (LAPIC,) MP state, pending events.
        public var blobs: [Blob]
        public var xsave: [UInt8]
        public var msrs: [MSR]
        /// The raw kvm_cpuid_entry2 array KVM_SET_CPUID2 gave the vCPU (empty: never set).
        public var cpuid: [UInt8]

        public init(id: UInt32, blobs: [Blob], xsave: [UInt8], msrs: [MSR], cpuid: [UInt8]) {
            self.id = id
            self.blobs = blobs
            self.xsave = xsave
            self.msrs = msrs
            self.cpuid = cpuid
        }
    }

    /// A device model's own state (`name`: the bus entry's name, e.g. "serial 8250 (COM1)").
    public struct DeviceRecord: Equatable, Sendable {
        public var name: String
        public var bytes: [UInt8]
        public init(name: String, bytes: [UInt8]) {
            self.name = name
            self.bytes = bytes
        }
    }
}

/// What is wrong with a state file, named so a user can tell a damaged file from a foreign one.
public struct SnapshotFormatError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension SnapshotState {
    /// The file's bytes.
    public func encode() -> [UInt8] {
        var payload = ByteWriter()
        payload.u8(machine.kind)
        payload.string(machine.guest)
        payload.string(machine.commandLine)
        payload.u32(machine.memoryMiB)
        payload.u32(UInt32(machine.ranges.count))
        for range in machine.ranges { payload.u64(range.start); payload.u64(range.size) }
        payload.u32(UInt32(machine.drives.count))
        for drive in machine.drives { payload.string(drive.path); payload.u8(drive.readOnly ? 1 : 0) }
        payload.u32(UInt32(machine.nets.count))
        for net in machine.nets { payload.u8(net.origin.rawValue); payload.string(net.name); payload.bytes(net.mac); payload.string(net.address) }
        payload.u8(machine.vsock == nil ? 0 : 1)
        if let vsock = machine.vsock { payload.string(vsock.path); payload.u64(vsock.guestCID) }
        payload.string(host.vendor)
        payload.u32(UInt32(host.features.count))
        for word in host.features { payload.u32(word) }
        payload.u32(host.xsaveBytes)
        payload.u32(UInt32(vcpus.count))
        for vcpu in vcpus {
            payload.u32(vcpu.id)
            payload.blobs(vcpu.blobs)
            payload.bytes(vcpu.xsave)
            payload.u32(UInt32(vcpu.msrs.count))
            for msr in vcpu.msrs { payload.u32(msr.index); payload.u64(msr.value) }
            payload.bytes(vcpu.cpuid)
        }
        payload.blobs(vmBlobs)
        payload.u32(UInt32(devices.count))
        for device in devices { payload.string(device.name); payload.bytes(device.bytes) }

        var file = ByteWriter()
        file.raw(Self.magic)
        file.u32(Self.version)
        file.u64(UInt64(payload.output.count))
        file.raw(payload.output)
        file.u64(CRC64.checksum(file.output))
        return file.output
    }

    /// Reads a state file's bytes; any inconsistency throws, naming what and where.
    public static func decode(_ bytes: [UInt8]) throws(SnapshotFormatError) -> SnapshotState {
        let header = magic.count + 4 + 8
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw SnapshotFormatError("not a Tandem snapshot state file (no TANDEMVM magic)")
        }
        guard bytes.count >= header + 8 else { throw SnapshotFormatError("truncated: \(bytes.count) bytes, shorter than the header") }
        var reader = ByteReader(bytes: bytes, position: magic.count)
        let fileVersion = try reader.u32("version")
        guard fileVersion == version else {
            throw SnapshotFormatError("format version \(fileVersion); this Tandem reads version \(version) only")
        }
        let payloadLength = try reader.u64("payload length")
        guard payloadLength == UInt64(bytes.count - header - 8) else {
            throw SnapshotFormatError("truncated or padded: the header says \(payloadLength) payload bytes, the file holds \(bytes.count - header - 8)")
        }
        let stored = UInt64(littleEndianBytes: bytes[(bytes.count - 8)...])
        let computed = CRC64.checksum(bytes[0..<(bytes.count - 8)])
        guard stored == computed else {
            throw SnapshotFormatError("damaged: its CRC-64 is 0x\(String(computed, radix: 16)), the file says 0x\(String(stored, radix: 16))")
        }
        reader.end = bytes.count - 8

        let kind = try reader.u8("machine kind")
        guard kind <= 1 else { throw SnapshotFormatError("machine kind \(kind): this Tandem restores tiny (0) and Linux (1) guests") }
        let guest = try reader.string("guest name")
        let commandLine = try reader.string("kernel command line")
        let memoryMiB = try reader.u32("memory size")
        let rangeCount = try reader.count("RAM ranges", limit: maximumRanges)
        var ranges: [RAMRange] = []
        for index in 0..<rangeCount {
            let range = RAMRange(start: try reader.u64("RAM range \(index) start"), size: try reader.u64("RAM range \(index) size"))
            guard range.size > 0, range.size % 4096 == 0, range.start % 4096 == 0, range.start <= UInt64.max - range.size else {
                throw SnapshotFormatError("RAM range \(index) (start 0x\(String(range.start, radix: 16)), \(range.size) bytes) is not page-aligned or wraps")
            }
            if let last = ranges.last, range.start < last.start + last.size {
                throw SnapshotFormatError("RAM range \(index) overlaps or precedes range \(index - 1)")
            }
            ranges.append(range)
        }
        let driveCount = try reader.count("drives", limit: maximumDevices)
        var drives: [Drive] = []
        for index in 0..<driveCount {
            let path = try reader.string("drive \(index) path")
            let flag = try reader.u8("drive \(index) read-only flag")
            guard flag <= 1, path.hasPrefix("/") else { throw SnapshotFormatError("drive \(index): \(path.hasPrefix("/") ? "read-only flag \(flag)" : "path \(path) is not absolute")") }
            drives.append(Drive(path: path, readOnly: flag == 1))
        }
        let netCount = try reader.count("network interfaces", limit: maximumDevices)
        var nets: [Net] = []
        for index in 0..<netCount {
            let rawOrigin = try reader.u8("interface \(index) origin")
            guard let origin = Net.Origin(rawValue: rawOrigin) else {
                throw SnapshotFormatError("interface \(index): origin \(rawOrigin) (0: a tap Tandem made, 1: the user's, 2: on Tandem's bridge)")
            }
            let name = try reader.string("interface \(index) tap name")
            let valid = switch origin {
            case .tandem: Net.tandemIndex(name) != nil
            case .user: Net.isInterfaceName(name)
            case .bridge: Net.isInterfaceName(name) && name.hasPrefix("tv") && name.count > 2
            }
            guard valid else {
                throw SnapshotFormatError("interface \(index): tap name \(name) is not \(origin == .tandem ? "tandemN (N 0 to 255)" : origin == .bridge ? "a bridge tap's name (tvID)" : "an interface name (1 to 15 letters, digits, '-', '_', '.')")")
            }
            let mac = try reader.bytes("interface \(index) MAC address", limit: 6)
            guard mac.count == 6 else { throw SnapshotFormatError("interface \(index): its MAC address is \(mac.count) bytes, not 6") }
            let address = try reader.string("interface \(index) address")
            guard origin == .bridge ? Net.isIPv4(address) : address.isEmpty else {
                throw SnapshotFormatError("interface \(index): address \(address.debugDescription) \(origin == .bridge ? "is not an IPv4 address" : "on a tap that is not the bridge's")")
            }
            if nets.contains(where: { $0.name == name }) { throw SnapshotFormatError("interface \(index): tap \(name) is named twice") }
            nets.append(Net(origin: origin, name: name, mac: mac, address: address))
        }
        guard driveCount + netCount <= maximumDevices else { throw SnapshotFormatError("\(driveCount) disks and \(netCount) interfaces: at most \(maximumDevices) virtio devices") }
        var vsock: Vsock?
        switch try reader.u8("vsock flag") {
        case 0: break
        case 1:
            let path = try reader.string("vsock path"), cid = try reader.u64("vsock guest CID")
            guard path.hasPrefix("/"), path.utf8.count <= Vsock.maximumPathBytes, !path.utf8.contains(0) else {
                throw SnapshotFormatError("vsock path \(path.debugDescription): not an absolute socket path of at most \(Vsock.maximumPathBytes) bytes")
            }
            // 0-2 are the hypervisor, the local host and the host; 2^32-1 is VMADDR_CID_ANY.
            guard cid >= 3, cid < 0xffff_ffff else { throw SnapshotFormatError("vsock guest CID \(cid): must be from 3 to 4294967294") }
            vsock = Vsock(path: path, guestCID: cid)
        case let flag: throw SnapshotFormatError("vsock flag \(flag): 0 (none) or 1")
        }
        let machine = MachineRecord(kind: kind, guest: guest, commandLine: commandLine, memoryMiB: memoryMiB, ranges: ranges, drives: drives, nets: nets,
                                    vsock: vsock)
        guard !ranges.isEmpty, machine.memoryBytes == UInt64(memoryMiB) << 20 else {
            throw SnapshotFormatError("its RAM ranges hold \(machine.memoryBytes) bytes, not the \(memoryMiB) MiB it claims")
        }
        let vendor = try reader.string("CPU vendor")
        let featureCount = try reader.count("CPU feature words", limit: HostRecord.featureNames.count)
        var features: [UInt32] = []
        for index in 0..<featureCount { features.append(try reader.u32("CPU feature word \(index)")) }
        let host = HostRecord(vendor: vendor, features: features, xsaveBytes: try reader.u32("XSAVE size"))

        let vcpuCount = try reader.count("vCPUs", limit: maximumVCPUs)
        guard vcpuCount >= 1 else { throw SnapshotFormatError("it holds no vCPU") }
        var vcpus: [VCPURecord] = []
        for index in 0..<vcpuCount {
            let id = try reader.u32("vCPU \(index) id")
            guard id == UInt32(index) else { throw SnapshotFormatError("vCPU \(index) has id \(id) (ids run 0, 1, ...)") }
            let blobs = try reader.blobs("vCPU \(index)")
            let xsave = try reader.bytes("vCPU \(index) XSAVE area")
            let msrCount = try reader.count("vCPU \(index) MSRs", limit: maximumMSRs)
            var msrs: [MSR] = []
            for _ in 0..<msrCount { msrs.append(MSR(index: try reader.u32("vCPU \(index) MSR index"), value: try reader.u64("vCPU \(index) MSR value"))) }
            let cpuid = try reader.bytes("vCPU \(index) CPUID")
            vcpus.append(VCPURecord(id: id, blobs: blobs, xsave: xsave, msrs: msrs, cpuid: cpuid))
        }
        let vmBlobs = try reader.blobs("VM")
        let deviceCount = try reader.count("devices", limit: maximumDevices)
        var devices: [DeviceRecord] = []
        for index in 0..<deviceCount {
            devices.append(DeviceRecord(name: try reader.string("device \(index) name"), bytes: try reader.bytes("device \(index) state")))
        }
        guard reader.position == reader.end else {
            throw SnapshotFormatError("\(reader.end - reader.position) bytes after the last record")
        }
        return SnapshotState(machine: machine, host: host, vcpus: vcpus, vmBlobs: vmBlobs, devices: devices)
    }
}

/// CRC-64/XZ (ECMA-182 polynomial, reflected; check value of "123456789": 0x995dc9bbdf1939fa).
public enum CRC64 {
    static let table: [UInt64] = (0..<256).map { index in
        var crc = UInt64(index)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xc96c_5795_d787_0f42 : crc >> 1 }
        return crc
    }

    public static func checksum<Bytes: Collection>(_ bytes: Bytes) -> UInt64 where Bytes.Element == UInt8 {
        var crc = UInt64.max
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = table[Int((crc ^ UInt64(byte)) & 0xff)] ^ (crc >> 8) }
        }
        return ~crc
    }
}

/// Little-endian output.
struct ByteWriter {
    var output: [UInt8] = []
    mutating func u8(_ value: UInt8) { output.append(value) }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.littleEndian) { output.append(contentsOf: $0) } }
    mutating func raw(_ bytes: [UInt8]) { output.append(contentsOf: bytes) }
    mutating func bytes(_ bytes: [UInt8]) { u32(UInt32(bytes.count)); raw(bytes) }
    mutating func string(_ text: String) { bytes(Array(text.utf8)) }
    mutating func blobs(_ blobs: [SnapshotState.Blob]) {
        u32(UInt32(blobs.count))
        for blob in blobs { u32(UInt32(bitPattern: blob.kind)); bytes(blob.bytes) }
    }
}

/// Bounds-checked little-endian input; every read names the field it was for.
struct ByteReader {
    let bytes: [UInt8]
    var position: Int
    var end: Int

    init(bytes: [UInt8], position: Int) {
        self.bytes = bytes
        self.position = position
        end = bytes.count
    }

    mutating func take(_ count: Int, _ what: String) throws(SnapshotFormatError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= end - position else {
            throw SnapshotFormatError("truncated: \(what) needs \(count) bytes at offset \(position), \(end - position) are left")
        }
        defer { position += count }
        return bytes[position..<(position + count)]
    }

    mutating func u8(_ what: String) throws(SnapshotFormatError) -> UInt8 { try take(1, what).first! }
    mutating func u32(_ what: String) throws(SnapshotFormatError) -> UInt32 { UInt32(truncatingIfNeeded: UInt64(littleEndianBytes: try take(4, what))) }
    mutating func u64(_ what: String) throws(SnapshotFormatError) -> UInt64 { UInt64(littleEndianBytes: try take(8, what)) }

    mutating func count(_ what: String, limit: Int) throws(SnapshotFormatError) -> Int {
        let value = try u32("the number of \(what)")
        guard value <= UInt32(limit) else { throw SnapshotFormatError("\(value) \(what): at most \(limit)") }
        return Int(value)
    }

    mutating func bytes(_ what: String, limit: Int = SnapshotState.maximumBlobBytes) throws(SnapshotFormatError) -> [UInt8] {
        let length = try u32("the length of \(what)")
        guard length <= UInt32(limit) else { throw SnapshotFormatError("\(what) is \(length) bytes: at most \(limit)") }
        return Array(try take(Int(length), what))
    }

    mutating func string(_ what: String) throws(SnapshotFormatError) -> String {
        let raw = try bytes(what, limit: SnapshotState.maximumStringBytes)
        guard let text = String(validating: raw, as: UTF8.self) else { throw SnapshotFormatError("\(what) is not UTF-8") }
        return text
    }

    mutating func blobs(_ what: String) throws(SnapshotFormatError) -> [SnapshotState.Blob] {
        let count = try count("\(what) KVM state blobs", limit: SnapshotState.maximumBlobs)
        var blobs: [SnapshotState.Blob] = []
        for index in 0..<count {
            let kind = Int32(bitPattern: try u32("\(what) blob \(index) kind"))
            if blobs.contains(where: { $0.kind == kind }) { throw SnapshotFormatError("\(what) holds KVM state kind \(kind) twice") }
            blobs.append(SnapshotState.Blob(kind: kind, bytes: try bytes("\(what) blob \(index)")))
        }
        return blobs
    }
}

extension UInt64 {
    /// The little-endian number in up to 8 bytes.
    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        var value: UInt64 = 0
        for (shift, byte) in bytes.prefix(8).enumerated() { value |= UInt64(byte) << (8 * shift) }
        self = value
    }
}
