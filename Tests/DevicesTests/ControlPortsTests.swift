import Devices
import GuestABI
import Testing

final class RecordingDelegate: ControlPortsDelegate {
    var ready: [(UInt32, UInt64)] = []
    var exits: [UInt8] = []
    func guestBecameReady(value: UInt32, timestamp: UInt64) { ready.append((value, timestamp)) }
    func guestRequestedExit(status: UInt8) { exits.append(status) }
}

@Suite("Control ports")
struct ControlPortsTests {
    @Test("the port block sits where the guest ABI header says")
    func layout() {
        #expect(ControlPorts.base == 0x500)
        #expect(UInt64(TANDEM_PORT_EXIT) - ControlPorts.base < ControlPorts.length)
        #expect(TANDEM_PORT_SIGNATURE == 0x54)
    }

    @Test("READY reads the signature and timestamps writes")
    func ready() {
        let delegate = RecordingDelegate()
        let ports = ControlPorts(delegate: delegate)
        var bytes: [UInt8] = [0, 0, 0, 0]
        bytes.withUnsafeMutableBytes { ports.read(offset: 0, into: $0) }
        #expect(bytes == [0x54, 0, 0, 0])
        [UInt8(7)].withUnsafeBytes { ports.write(offset: 0, from: $0) }
        #expect(delegate.ready.count == 1 && delegate.ready[0].0 == 7 && delegate.ready[0].1 > 0)
    }

    @Test("EXIT hands back the low 8 bits of a 32-bit write")
    func exitStatus() {
        let delegate = RecordingDelegate()
        let ports = ControlPorts(delegate: delegate)
        let offset = UInt64(TANDEM_PORT_EXIT) - ControlPorts.base
        withUnsafeBytes(of: UInt32(0x1_03).littleEndian) { ports.write(offset: offset, from: $0) }
        [UInt8(3)].withUnsafeBytes { ports.write(offset: offset, from: $0) }
        #expect(delegate.exits == [3, 3])
        [UInt8(9)].withUnsafeBytes { ports.write(offset: 2, from: $0) }  // between the two ports: ignored
        #expect(delegate.exits == [3, 3] && delegate.ready.isEmpty)
    }
}
