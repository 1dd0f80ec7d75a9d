import HostOS

/// What the i8042 asks of the machine.
public protocol ResetLine: AnyObject {
    /// The guest pulsed the CPU reset line (command 0xfe): `reboot=k` ends the VM this way.
    func guestRequestedReset()
}

/// The PC keyboard controller, just enough for Linux: its probe finds a controller with no
/// devices and finishes at once (unanswered, it costs seconds of timeouts), and command 0xfe resets
/// the machine. Ports 0x60 (data) and 0x64 (status on read, command on write).
public final class I8042: BusDevice, SnapshotDevice, @unchecked Sendable {
    public static let dataPort: UInt64 = 0x60
    public static let commandPort: UInt64 = 0x64
    /// Register a device on 0x60..0x64 (five ports; 0x61..0x63 read as 0, as the PC's speaker port does).
    public static let length: UInt64 = 5

    public enum Command {
        public static let readControl: UInt8 = 0x20
        public static let writeControl: UInt8 = 0x60
        public static let disableAux: UInt8 = 0xa7
        public static let enableAux: UInt8 = 0xa8
        public static let testAux: UInt8 = 0xa9
        public static let selfTest: UInt8 = 0xaa
        public static let testKeyboard: UInt8 = 0xab
        public static let disableKeyboard: UInt8 = 0xad
        public static let enableKeyboard: UInt8 = 0xae
        public static let writeAux: UInt8 = 0xd4
        public static let pulseReset: UInt8 = 0xfe
    }

    public static let statusOutputFull: UInt8 = 0x01
    public static let statusSystemFlag: UInt8 = 0x04
    public static let statusCommand: UInt8 = 0x08
    /// The keyboard is not inhibited (no key lock): without it Linux warns "Keylock active".
    public static let statusNotInhibited: UInt8 = 0x10

    private let lock = Lock()
    private weak var reset: ResetLine?
    private var control: UInt8 = 0x45   // keyboard interrupt on, system flag, translation: what firmware leaves
    private var output: [UInt8] = []
    private var lastWasCommand = false
    private var pending: UInt8?         // a command waiting for its data byte

    public init(reset: ResetLine) { self.reset = reset }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard !data.isEmpty else { return }
        let value: UInt8 = lock.withLock {
            switch offset {
            case 0: return output.isEmpty ? 0 : output.removeFirst()
            case 4:
                var status = Self.statusSystemFlag | Self.statusNotInhibited
                if !output.isEmpty { status |= Self.statusOutputFull }
                if lastWasCommand { status |= Self.statusCommand }
                return status
            default: return 0
            }
        }
        data[0] = value
        for index in 1..<data.count { data[index] = 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let value = data.first else { return }
        var resetRequested = false
        lock.withLock {
            switch offset {
            case 4:
                lastWasCommand = true
                switch value {
                case Command.readControl: output.append(control)
                case Command.writeControl, Command.writeAux: pending = value
                case Command.selfTest: output.append(0x55)
                case Command.testKeyboard, Command.testAux: output.append(0x00)
                case Command.disableAux: control |= 0x20
                case Command.enableAux: control &= ~0x20
                case Command.disableKeyboard: control |= 0x10
                case Command.enableKeyboard: control &= ~0x10
                case Command.pulseReset: resetRequested = true
                default: break
                }
            case 0:
                lastWasCommand = false
                switch pending {
                case Command.writeControl: control = value
                case Command.writeAux: break  // no mouse: swallow it
                default: output.append(0xfe)  // a keyboard command with no keyboard: "resend"
                }
                pending = nil
            default: break
            }
        }
        if resetRequested { reset?.guestRequestedReset() }
    }

    // MARK: - Snapshots

    static let stateVersion: UInt8 = 1
    /// The controller's state: version, control byte, flags (last write was a command, a command
    /// waits for data), the waiting command, then the output bytes not read yet.
    public func savedState() -> [UInt8] {
        lock.withLock {
            [Self.stateVersion, control, (lastWasCommand ? 1 : 0) | (pending != nil ? 2 : 0), pending ?? 0] + output
        }
    }

    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        guard bytes.count >= 4, bytes[0] == Self.stateVersion, bytes.count - 4 <= 64 else {
            throw DeviceStateError("i8042: state of \(bytes.count) bytes, version \(bytes.first ?? 0); expected version \(Self.stateVersion), 4 to 68 bytes")
        }
        lock.withLock {
            control = bytes[1]
            lastWasCommand = bytes[2] & 1 != 0
            pending = bytes[2] & 2 != 0 ? bytes[3] : nil
            output = Array(bytes[4...])
        }
    }
}
