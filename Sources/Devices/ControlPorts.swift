import GuestABI
import HostOS

/// What the guest asked of the VMM through the control ports.
public protocol ControlPortsDelegate: AnyObject {
    /// The guest wrote READY. `timestamp` is CLOCK_MONOTONIC nanoseconds taken at the exit.
    func guestBecameReady(value: UInt32, timestamp: UInt64)
    /// The guest wrote EXIT: the VM must stop and the VMM exit with `status`.
    func guestRequestedExit(status: UInt8)
}

/// The Tandem control ports (READY and EXIT); the protocol is defined in tandem_guest_abi.h and
/// docs/guest-abi.md. One device covers both so they can never be registered apart.
public final class ControlPorts: BusDevice, @unchecked Sendable {
    /// First port of the block and its length (READY at +0, EXIT at +4, four bytes each).
    public static let base = UInt64(TANDEM_PORT_READY)
    public static let length: UInt64 = 8
    static let exitOffset = UInt64(TANDEM_PORT_EXIT) - UInt64(TANDEM_PORT_READY)

    private weak var delegate: ControlPortsDelegate?

    public init(delegate: ControlPortsDelegate) {
        self.delegate = delegate
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices { data[index] = 0 }
        if offset == 0, !data.isEmpty { data[0] = UInt8(TANDEM_PORT_SIGNATURE) }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        let timestamp = Clock.monotonicNanoseconds()
        var value: UInt32 = 0
        for (index, byte) in data.prefix(4).enumerated() { value |= UInt32(byte) << (8 * index) }
        switch offset {
        case 0: delegate?.guestBecameReady(value: value, timestamp: timestamp)
        case ControlPorts.exitOffset: delegate?.guestRequestedExit(status: UInt8(truncatingIfNeeded: value))
        default: break
        }
    }
}
