import Devices
import Testing

final class CollectingSink: ConsoleSink {
    var bytes: [UInt8] = []
    func write(_ data: UnsafeRawBufferPointer) { bytes.append(contentsOf: data) }
}

final class RecordingLine: InterruptLine {
    var levels: [Bool] = []
    func set(high: Bool) { levels.append(high) }
}

/// Reads and writes one UART register as a driver would.
struct UART {
    let device: Serial8250
    func read(_ register: UInt64) -> UInt8 {
        var byte: [UInt8] = [0]
        byte.withUnsafeMutableBytes { device.read(offset: register, into: $0) }
        return byte[0]
    }
    func write(_ register: UInt64, _ value: UInt8) {
        [value].withUnsafeBytes { device.write(offset: register, from: $0) }
    }
}

@Suite("Serial 8250")
struct SerialTests {
    typealias R = Serial8250.Register

    @Test("transmits THR writes to the sink and always reports the transmitter empty")
    func transmit() {
        let sink = CollectingSink()
        let uart = UART(device: Serial8250(sink: sink))
        #expect(uart.read(R.lineStatus) == 0x60)  // THRE | TEMT, no data ready
        for byte in "ok\n".utf8 { uart.write(R.data, byte) }
        #expect(sink.bytes == Array("ok\n".utf8))
        #expect(uart.device.transmittedBytes == 3)
    }

    @Test("DLAB switches offsets 0 and 1 to the divisor latch")
    func divisorLatch() {
        let sink = CollectingSink()
        let uart = UART(device: Serial8250(sink: sink))
        uart.write(R.lineControl, 0x83)
        uart.write(R.data, 0x01)
        uart.write(R.interruptEnable, 0x00)
        #expect(uart.read(R.data) == 0x01)
        uart.write(R.lineControl, 0x03)
        #expect(sink.bytes.isEmpty)
        #expect(uart.read(R.interruptEnable) == 0)
    }

    @Test("loopback answers Linux's probe: MCR 0x1a reads back as MSR 0x90, THR comes back in RBR")
    func loopback() {
        let sink = CollectingSink()
        let uart = UART(device: Serial8250(sink: sink))
        uart.write(R.modemControl, 0x1a)
        #expect(uart.read(R.modemStatus) & 0xf0 == 0x90)
        uart.write(R.data, 0x5a)
        #expect(uart.read(R.lineStatus) & 0x01 == 0x01)
        #expect(uart.read(R.data) == 0x5a)
        #expect(sink.bytes.isEmpty)
        uart.write(R.modemControl, 0x0b)
        #expect(uart.read(R.modemStatus) == Serial8250.Bits.msrLineUp)
    }

    @Test("scratch register keeps its value")
    func scratch() {
        let uart = UART(device: Serial8250(sink: CollectingSink()))
        uart.write(R.scratch, 0xa5)
        #expect(uart.read(R.scratch) == 0xa5)
    }

    @Test("THR-empty interrupt: raised when enabled, identified once by IIR, raised again by the next byte")
    func transmitInterrupt() {
        let line = RecordingLine()
        let uart = UART(device: Serial8250(sink: CollectingSink(), interrupt: line))
        #expect(uart.read(R.interruptIdentify) == 0x01)
        uart.write(R.interruptEnable, 0x02)
        #expect(line.levels == [true])
        #expect(uart.read(R.interruptIdentify) == 0x02)
        #expect(line.levels == [true, false])
        #expect(uart.read(R.interruptIdentify) == 0x01)
        uart.write(R.data, 0x41)
        #expect(line.levels == [true, false, true])
    }

    @Test("received bytes: data ready, receive interrupt, FIFO bits, and the buffer limit")
    func receive() {
        let line = RecordingLine()
        let uart = UART(device: Serial8250(sink: CollectingSink(), interrupt: line))
        uart.write(R.interruptIdentify, 0x01)  // enable FIFOs
        uart.write(R.interruptEnable, 0x01)
        #expect(uart.device.enqueueInput(Array("hi".utf8)) == 2)
        #expect(line.levels.last == true)
        #expect(uart.read(R.interruptIdentify) == 0xc4)
        #expect(uart.read(R.data) == UInt8(ascii: "h"))
        #expect(uart.read(R.data) == UInt8(ascii: "i"))
        #expect(uart.read(R.lineStatus) & 0x01 == 0)
        #expect(line.levels.last == false)
        #expect(uart.read(R.data) == 0)
        let flood = [UInt8](repeating: 0x61, count: Serial8250.receiveCapacity + 10)
        #expect(uart.device.enqueueInput(flood) == Serial8250.receiveCapacity)
    }

    @Test("OUT2 gates the interrupt output, as on a PC")
    func out2Gate() {
        let line = RecordingLine()
        let uart = UART(device: Serial8250(sink: CollectingSink(), interrupt: line))
        uart.write(R.modemControl, 0x00)
        uart.write(R.interruptEnable, 0x02)
        #expect(line.levels.isEmpty)
        uart.write(R.modemControl, 0x08)
        #expect(line.levels == [true])
    }
}
