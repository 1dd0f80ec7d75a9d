import HostOS

/// Where a console device sends what the guest transmits.
public protocol ConsoleSink: AnyObject {
    func write(_ bytes: UnsafeRawBufferPointer)
}

/// An 8250/16550A-compatible UART, as a PC has at COM1 (0x3f8, IRQ 4): enough for a polling
/// bare-metal driver and for Linux's 8250 driver in interrupt mode (loopback probe, THR-empty
/// and receive interrupts, FIFO bits). Register map: PC16550D data sheet, table 2.
public final class Serial8250: BusDevice, SnapshotDevice, @unchecked Sendable {
    /// Register offsets from the base port.
    public enum Register {
        public static let data: UInt64 = 0           // RBR (read) / THR (write); DLL when DLAB
        public static let interruptEnable: UInt64 = 1 // IER; DLM when DLAB
        public static let interruptIdentify: UInt64 = 2 // IIR (read) / FCR (write)
        public static let lineControl: UInt64 = 3     // LCR
        public static let modemControl: UInt64 = 4    // MCR
        public static let lineStatus: UInt64 = 5      // LSR
        public static let modemStatus: UInt64 = 6     // MSR
        public static let scratch: UInt64 = 7         // SCR
    }

    /// Register bits the driver-visible behaviour depends on.
    public enum Bits {
        public static let lcrDivisorLatch: UInt8 = 0x80
        public static let ierReceivedData: UInt8 = 0x01
        public static let ierTransmitterEmpty: UInt8 = 0x02
        public static let iirNoInterrupt: UInt8 = 0x01
        public static let iirTransmitterEmpty: UInt8 = 0x02
        public static let iirReceivedData: UInt8 = 0x04
        public static let iirFIFOEnabled: UInt8 = 0xc0
        public static let fcrEnableFIFO: UInt8 = 0x01
        public static let fcrClearReceive: UInt8 = 0x02
        public static let lsrDataReady: UInt8 = 0x01
        public static let lsrTransmitterHoldingEmpty: UInt8 = 0x20
        public static let lsrTransmitterEmpty: UInt8 = 0x40
        public static let mcrLoopback: UInt8 = 0x10
        /// MSR when not in loopback: carrier detect, data set ready, clear to send (a live line).
        public static let msrLineUp: UInt8 = 0xb0
    }

    /// How many received bytes the UART buffers (a 16550A has 16; more spares the host thread).
    public static let receiveCapacity = 4096

    private let lock = Lock()
    private let sink: ConsoleSink
    private let interrupt: InterruptLine

    private var interruptEnable: UInt8 = 0
    private var lineControl: UInt8 = 0x03   // 8N1
    private var modemControl: UInt8 = 0x08  // OUT2, as firmware leaves it
    private var scratch: UInt8 = 0
    private var divisorLow: UInt8 = 0x0c    // 9600 baud
    private var divisorHigh: UInt8 = 0
    private var fifoEnabled = false
    private var transmitterEmptyPending = false
    private var receive: [UInt8] = []
    private var receiveHead = 0
    private var interruptLevel = false
    /// Bytes transmitted by the guest (also counts loopback bytes).
    public private(set) var transmittedBytes: UInt64 = 0

    public init(sink: ConsoleSink, interrupt: InterruptLine = DisconnectedInterruptLine()) {
        self.sink = sink
        self.interrupt = interrupt
    }

    /// Queues host input (a terminal's keystrokes) for the guest; bytes beyond the buffer are dropped.
    /// Returns how many were accepted.
    @discardableResult
    public func enqueueInput(_ bytes: [UInt8]) -> Int {
        lock.withLock {
            let room = Serial8250.receiveCapacity - (receive.count - receiveHead)
            let accepted = min(room, bytes.count)
            receive.append(contentsOf: bytes.prefix(accepted))
            updateInterrupt()
            return accepted
        }
    }

    public func read(offset: UInt64, into data: UnsafeMutableRawBufferPointer) {
        guard !data.isEmpty else { return }
        let value: UInt8 = lock.withLock {
            let dlab = lineControl & Bits.lcrDivisorLatch != 0
            switch offset {
            case Register.data:
                if dlab { return divisorLow }
                return popReceived()
            case Register.interruptEnable:
                return dlab ? divisorHigh : interruptEnable
            case Register.interruptIdentify:
                return identify()
            case Register.lineControl: return lineControl
            case Register.modemControl: return modemControl
            case Register.lineStatus:
                var status = Bits.lsrTransmitterHoldingEmpty | Bits.lsrTransmitterEmpty
                if receiveHead < receive.count { status |= Bits.lsrDataReady }
                return status
            case Register.modemStatus:
                guard modemControl & Bits.mcrLoopback != 0 else { return Bits.msrLineUp }
                // Loopback wires MCR's outputs to MSR's inputs: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
                let mcr = modemControl
                return ((mcr & 0x02) << 3) | ((mcr & 0x01) << 5) | ((mcr & 0x04) << 4) | ((mcr & 0x08) << 4)
            case Register.scratch: return scratch
            default: return 0xff
            }
        }
        data[0] = value
        for index in 1..<data.count { data[index] = 0xff }
    }

    public func write(offset: UInt64, from data: UnsafeRawBufferPointer) {
        guard let value = data.first else { return }
        var transmitted: UInt8?
        lock.withLock {
            let dlab = lineControl & Bits.lcrDivisorLatch != 0
            switch offset {
            case Register.data:
                if dlab { divisorLow = value; return }
                transmittedBytes += 1
                if modemControl & Bits.mcrLoopback != 0 {
                    if receive.count - receiveHead < Serial8250.receiveCapacity { receive.append(value) }
                } else {
                    transmitted = value
                }
                // The byte leaves at once, so THR is empty again: that is the THRE interrupt's cause.
                transmitterEmptyPending = true
            case Register.interruptEnable:
                if dlab { divisorHigh = value; return }
                let enablesTransmitterEmpty = value & Bits.ierTransmitterEmpty != 0 && interruptEnable & Bits.ierTransmitterEmpty == 0
                interruptEnable = value & 0x0f
                if enablesTransmitterEmpty { transmitterEmptyPending = true }
            case Register.interruptIdentify:
                fifoEnabled = value & Bits.fcrEnableFIFO != 0
                if value & Bits.fcrClearReceive != 0 { receive.removeAll(keepingCapacity: true); receiveHead = 0 }
            case Register.lineControl: lineControl = value
            case Register.modemControl: modemControl = value & 0x1f
            case Register.scratch: scratch = value
            default: break  // LSR and MSR are read-only
            }
            updateInterrupt()
        }
        if var byte = transmitted {
            withUnsafeBytes(of: &byte) { sink.write($0) }
        }
    }

    // MARK: - Snapshots

    /// The UART's registers and the bytes it holds for the guest (a snapshot's device state):
    /// version, IER, LCR, MCR, SCR, DLL, DLM, flags (FIFO on, THRE pending, line high), then the
    /// received bytes not read yet.
    public func savedState() -> [UInt8] {
        lock.withLock {
            let flags: UInt8 = (fifoEnabled ? 1 : 0) | (transmitterEmptyPending ? 2 : 0) | (interruptLevel ? 4 : 0)
            return [Serial8250.stateVersion, interruptEnable, lineControl, modemControl, scratch, divisorLow, divisorHigh, flags]
                + receive[receiveHead...]
        }
    }

    static let stateVersion: UInt8 = 1
    static let stateHeaderBytes = 8

    /// Takes back `savedState()`'s bytes (before the guest runs); throws a message naming what is wrong.
    public func restoreState(_ bytes: [UInt8]) throws(DeviceStateError) {
        guard bytes.count >= Serial8250.stateHeaderBytes, bytes[0] == Serial8250.stateVersion else {
            throw DeviceStateError("serial 8250: state of \(bytes.count) bytes, version \(bytes.first ?? 0); expected version \(Serial8250.stateVersion), at least \(Serial8250.stateHeaderBytes) bytes")
        }
        let pending = bytes.count - Serial8250.stateHeaderBytes
        guard pending <= Serial8250.receiveCapacity else {
            throw DeviceStateError("serial 8250: \(pending) received bytes, more than its buffer's \(Serial8250.receiveCapacity)")
        }
        lock.withLock {
            interruptEnable = bytes[1] & 0x0f
            lineControl = bytes[2]
            modemControl = bytes[3] & 0x1f
            scratch = bytes[4]
            divisorLow = bytes[5]
            divisorHigh = bytes[6]
            fifoEnabled = bytes[7] & 1 != 0
            transmitterEmptyPending = bytes[7] & 2 != 0
            receive = Array(bytes[Serial8250.stateHeaderBytes...])
            receiveHead = 0
            // The line is driven again from the restored registers (the new irqchip starts low).
            interruptLevel = false
            updateInterrupt()
        }
    }

    // MARK: - Under the lock

    private func popReceived() -> UInt8 {
        guard receiveHead < receive.count else { return 0 }
        let byte = receive[receiveHead]
        receiveHead += 1
        if receiveHead == receive.count { receive.removeAll(keepingCapacity: true); receiveHead = 0 }
        updateInterrupt()
        return byte
    }

    /// IIR: the highest-priority pending interrupt. Reading it reports THRE and thereby clears it.
    private func identify() -> UInt8 {
        let fifo: UInt8 = fifoEnabled ? Bits.iirFIFOEnabled : 0
        if interruptEnable & Bits.ierReceivedData != 0 && receiveHead < receive.count {
            return fifo | Bits.iirReceivedData
        }
        if interruptEnable & Bits.ierTransmitterEmpty != 0 && transmitterEmptyPending {
            transmitterEmptyPending = false
            updateInterrupt()
            return fifo | Bits.iirTransmitterEmpty
        }
        return fifo | Bits.iirNoInterrupt
    }

    private func updateInterrupt() {
        let receivePending = interruptEnable & Bits.ierReceivedData != 0 && receiveHead < receive.count
        let transmitPending = interruptEnable & Bits.ierTransmitterEmpty != 0 && transmitterEmptyPending
        // OUT2 gates the UART's interrupt output on a PC. Only changes reach the line: each one may
        // cost the VMM a system call.
        let level = (receivePending || transmitPending) && modemControl & 0x08 != 0
        if level != interruptLevel {
            interruptLevel = level
            interrupt.set(high: level)
        }
    }
}
