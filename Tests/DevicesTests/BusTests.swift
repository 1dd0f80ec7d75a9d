@testable import Devices
import Testing

/// A device that remembers what it saw and answers reads with its offset.
final class RecordingDevice: BusDevice {
    var writes: [(UInt64, [UInt8])] = []
    func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        for index in data.indices { data[index] = UInt8(truncatingIfNeeded: offset) &+ UInt8(index) }
    }
    func write(offset: UInt64, from data: UnsafeRawBufferPointer) { writes.append((offset, Array(data))) }
}

@Suite("Bus")
struct BusTests {
    @Test("routes by range and hands devices their own offsets")
    func routing() throws {
        let bus = Bus()
        let low = RecordingDevice(), high = RecordingDevice()
        try bus.register(high, base: 0x3f8, length: 8, name: "serial")
        try bus.register(low, base: 0x60, length: 5, name: "i8042")
        var byte: [UInt8] = [0]
        #expect(byte.withUnsafeMutableBytes { bus.read(0x3fa, into: $0) })
        #expect(byte == [2])
        [UInt8(0xfe)].withUnsafeBytes { _ = bus.write(0x64, from: $0) }
        #expect(low.writes.last?.0 == 4 && low.writes.last?.1 == [0xfe])
        #expect(high.writes.isEmpty)
    }

    @Test("an address no device claims is reported unhandled")
    func unclaimed() throws {
        let bus = Bus()
        try bus.register(RecordingDevice(), base: 0x100, length: 0x10, name: "a")
        var byte: [UInt8] = [0]
        for address: UInt64 in [0, 0xff, 0x110, 0xffff] {
            #expect(!byte.withUnsafeMutableBytes { bus.read(address, into: $0) })
        }
        #expect(bus.entry(for: 0x10f)?.name == "a")
    }

    @Test("overlapping ranges are refused, naming both devices")
    func overlap() throws {
        let bus = Bus()
        try bus.register(RecordingDevice(), base: 0x100, length: 0x10, name: "first")
        #expect(throws: BusOverlapError(name: "second", existing: "first", base: 0x10f)) {
            try bus.register(RecordingDevice(), base: 0x10f, length: 2, name: "second")
        }
        try bus.register(RecordingDevice(), base: 0x110, length: 1, name: "adjacent")
        #expect(bus.entries.map(\.name) == ["first", "adjacent"])
    }
}
