/// A device the VMM places on a bus. It sees offsets into its own range and plain bytes — never KVM,
/// never guest memory — so each device can be unit-tested on its own.
public protocol BusDevice: AnyObject {
    /// Fills `data` with what the guest reads at `offset` (data.count is the access width).
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer)
    /// Takes what the guest writes at `offset`.
    func write(offset: UInt64, from data: UnsafeRawBufferPointer)
}

/// Two devices claimed overlapping ranges.
/// A device whose state a snapshot carries: its own versioned bytes, taken back before the guest
/// runs again. (Devices with no state of their own, the control ports, need not conform.)
public protocol SnapshotDevice: AnyObject {
    func savedState() -> [UInt8]
    func restoreState(_ bytes: [UInt8]) throws(DeviceStateError)
}

/// A device state from a snapshot that the device cannot take back, named.
public struct DeviceStateError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct BusOverlapError: Error, CustomStringConvertible, Equatable {
    public let name: String
    public let existing: String
    public let base: UInt64
    public var description: String {
        "device \(name) at 0x\(String(base, radix: 16)) overlaps \(existing)"
    }
}

/// Routes accesses by address to the device whose range holds them: one bus for port I/O, one for
/// MMIO. Devices are registered before the VM runs; the ranges are immutable afterwards, so
/// lookups need no lock (a device that is shared between threads guards its own state).
public final class Bus: @unchecked Sendable {
    public struct Entry {
        public let base: UInt64
        public let length: UInt64
        public let name: String
        public let device: BusDevice
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    public func register(_ device: BusDevice, base: UInt64, length: UInt64, name: String) throws(BusOverlapError) {
        precondition(length > 0, "a bus range must not be empty")
        if let clash = entries.first(where: { base < $0.base + $0.length && $0.base < base + length }) {
            throw BusOverlapError(name: name, existing: clash.name, base: base)
        }
        entries.append(Entry(base: base, length: length, name: name, device: device))
        entries.sort { $0.base < $1.base }
    }

    /// The device entry covering `address`, if any (binary search: buses stay small but hot).
    public func entry(for address: UInt64) -> Entry? {
        var low = 0, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            let entry = entries[middle]
            if address < entry.base { high = middle } else if address >= entry.base + entry.length { low = middle + 1 } else { return entry }
        }
        return nil
    }

    /// Dispatches a read; false when no device claims `address` (the caller answers for the bus).
    @discardableResult
    public func read(_ address: UInt64, into data: UnsafeMutableRawBufferPointer) -> Bool {
        guard let entry = entry(for: address) else { return false }
        entry.device.read(offset: address - entry.base, into: data)
        return true
    }

    /// Dispatches a write; false when no device claims `address`.
    @discardableResult
    public func write(_ address: UInt64, from data: UnsafeRawBufferPointer) -> Bool {
        guard let entry = entry(for: address) else { return false }
        entry.device.write(offset: address - entry.base, from: data)
        return true
    }
}
