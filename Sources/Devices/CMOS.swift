#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// The PC's CMOS RAM and real-time clock (MC146818) at ports 0x70 (index) and 0x71 (data). It
/// answers the clock in BCD from the host's UTC time, with "update in progress" always clear, so
/// the kernel's probe and its read of the wall clock finish at once.
public final class CMOS: BusDevice, SnapshotDevice, @unchecked Sendable {
    public static let base: UInt64 = 0x70
    public static let length: UInt64 = 2

    public enum Register {
        public static let seconds: UInt8 = 0x00
        public static let minutes: UInt8 = 0x02
        public static let hours: UInt8 = 0x04
        public static let weekday: UInt8 = 0x06
        public static let day: UInt8 = 0x07
        public static let month: UInt8 = 0x08
        public static let year: UInt8 = 0x09
        public static let statusA: UInt8 = 0x0a
        public static let statusB: UInt8 = 0x0b
        public static let statusC: UInt8 = 0x0c
        public static let statusD: UInt8 = 0x0d
        public static let century: UInt8 = 0x32
    }

    private let lock = Lock()
    private var index: UInt8 = 0
    private var ram = [UInt8](repeating: 0, count: 128)
    /// Seconds since the epoch to report; the host's clock unless a test fixes it.
    private let now: () -> Int

    public init(now: @escaping () -> Int = { Int(time(nil)) }) {
        self.now = now
        ram[Int(Register.statusA)] = 0x26  // 32.768 kHz time base, 1.024 kHz rate, no update in progress
        ram[Int(Register.statusB)] = 0x02  // 24-hour mode, BCD
        ram[Int(Register.statusD)] = 0x80  // the battery is fine
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard !data.isEmpty else { return }
        data[0] = lock.withLock { offset == 0 ? 0xff : value(at: index) }
        for position in 1..<data.count { data[position] = 0 }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let value = data.first else { return }
        lock.withLock {
            if offset == 0 {
                index = value & 0x7f  // bit 7 masks NMIs on a PC; nothing to mask here
            } else if index > Register.statusD {
                ram[Int(index)] = value
            } else if index == Register.statusB {
                ram[Int(index)] = value
            }
        }
    }

    private func value(at register: UInt8) -> UInt8 {
        var seconds = now()
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func bcd(_ number: Int32) -> UInt8 { UInt8(number / 10 << 4 | number % 10) }
        switch register {
        case Register.seconds: return bcd(parts.tm_sec)
        case Register.minutes: return bcd(parts.tm_min)
        case Register.hours: return bcd(parts.tm_hour)
        case Register.weekday: return bcd(parts.tm_wday + 1)
        case Register.day: return bcd(parts.tm_mday)
        case Register.month: return bcd(parts.tm_mon + 1)
        case Register.year: return bcd(parts.tm_year % 100)
        case Register.century: return bcd((parts.tm_year + 1900) / 100)
        case Register.statusC: return 0
        default: return ram[Int(register)]
        }
    }

    // MARK: - Snapshots

    static let stateVersion: UInt8 = 1
    /// Version, the selected register, the 128 bytes of CMOS RAM (the clock is the host's, read
    /// when the guest reads it).
    public func savedState() -> [UInt8] {
        lock.withLock { [Self.stateVersion, index] + ram }
    }

    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        guard bytes.count == 2 + 128, bytes[0] == Self.stateVersion else {
            throw DeviceStateError("cmos rtc: state of \(bytes.count) bytes, version \(bytes.first ?? 0); expected version \(Self.stateVersion), 130 bytes")
        }
        lock.withLock {
            index = bytes[1] & 0x7f
            ram = Array(bytes[2...])
        }
    }
}
