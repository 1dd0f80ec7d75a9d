import Devices
import Foundation
import GuestMemory
import HostOS
import Testing
@testable import Virtio

/// The interrupt as the interrupt controller sees it: how many edges arrived.
final class CountingTrigger: InterruptTrigger, @unchecked Sendable {
    private let lock = Lock()
    private var edges = 0
    var count: Int { lock.withLock { edges } }
    func trigger() { lock.withLock { edges += 1 } }
}

/// A device whose requests take as long as the test says: `entered` is signalled when a request
/// starts, and the request ends when the test signals `finish`.
final class SlowDevice: VirtioDevice, @unchecked Sendable {
    let entered = DispatchSemaphore(value: 0)
    let finish = DispatchSemaphore(value: 0)
    var deviceID: UInt32 { 2 }
    var features: UInt64 { 0 }
    var queueCount: Int { 1 }
    func readConfig(offset: Int, into data: UnsafeMutableRawBufferPointer) { data.initializeMemory(as: UInt8.self, repeating: 0) }
    func handle(_ chain: DescriptorChain, queue: Int, memory: GuestMemory) throws(VirtqueueError) -> UInt32 {
        entered.signal()
        finish.wait()
        return 0
    }
    func reset() {}
}

extension MMIOTransport {
    /// A 32-bit register as a driver reads it, and a write of one.
    func register(_ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        withUnsafeMutableBytes(of: &value) { read(offset: UInt64(offset), into: $0) }
        return value
    }
    func set(_ offset: Int, _ value: UInt32) {
        var value = value
        withUnsafeBytes(of: &value) { write(offset: UInt64(offset), from: $0) }
    }
}

/// A guest driver, written from the virtio 1.x spec's side: it programs the transport's registers
/// and lays descriptors and rings out in guest memory, as Linux's virtio_mmio and virtio_blk do.
final class Driver: @unchecked Sendable {
    static let descriptors: UInt64 = 0x1000, available: UInt64 = 0x2000, used: UInt64 = 0x3000, data: UInt64 = 0x10000
    let memory: GuestMemory
    let transport: MMIOTransport
    let line = CountingTrigger()
    let disk: VirtioBlock
    let file: String
    var nextAvailable: UInt16 = 0

    init(diskBytes: Int = 64 * 512, readOnly: Bool = false, device: VirtioDevice? = nil) throws {
        memory = try GuestMemory(ranges: [(GuestAddress(0), 2 << 20)])
        file = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-virtio-\(UUID().uuidString.prefix(8)).img").path
        try Data(count: diskBytes).write(to: URL(fileURLWithPath: file))
        disk = try VirtioBlock(path: file, readOnly: readOnly, serial: "tandem-test")
        transport = MMIOTransport(device: device ?? disk, memory: memory, interrupt: line)
    }
    deinit { unlink(file) }

    func register(_ offset: Int) -> UInt32 { transport.register(offset) }
    func set(_ offset: Int, _ value: UInt32) { transport.set(offset, value) }
    var status: UInt32 { register(0x070) }

    /// The initialisation sequence (3.1.1), with `features` accepted and queue 0 of `size`.
    func start(features: UInt64 = MMIOTransport.featureVersion1, size: UInt32 = 16, used: UInt64 = used) {
        set(0x070, 0)
        set(0x070, 1)
        set(0x070, 1 | 2)
        set(0x024, 0); set(0x020, UInt32(truncatingIfNeeded: features))
        set(0x024, 1); set(0x020, UInt32(truncatingIfNeeded: features >> 32))
        set(0x070, 1 | 2 | 8)
        set(0x030, 0)
        set(0x038, size)
        set(0x080, UInt32(truncatingIfNeeded: Self.descriptors)); set(0x084, 0)
        set(0x090, UInt32(truncatingIfNeeded: Self.available)); set(0x094, 0)
        set(0x0a0, UInt32(truncatingIfNeeded: used)); set(0x0a4, UInt32(truncatingIfNeeded: used >> 32))
        set(0x044, 1)
        set(0x070, 1 | 2 | 8 | 4)
    }

    /// Writes descriptor `index`.
    func descriptor(_ index: UInt16, address: UInt64, length: UInt32, writable: Bool, next: UInt16? = nil) throws {
        let base = GuestAddress(Self.descriptors + 16 * UInt64(index))
        try memory.write(address, at: base)
        try memory.write(length, at: base + 8)
        try memory.write(UInt16((next != nil ? 1 : 0) | (writable ? 2 : 0)), at: base + 12)
        try memory.write(next ?? 0, at: base + 14)
    }

    /// Descriptor `index` of the queue's table, pointing to an indirect table.
    func indirect(_ index: UInt16, table: UInt64, length: UInt32, next: UInt16? = nil) throws {
        let base = GuestAddress(Self.descriptors + 16 * UInt64(index))
        try memory.write(table, at: base)
        try memory.write(length, at: base + 8)
        try memory.write(UInt16(4 | (next != nil ? 1 : 0)), at: base + 12)
        try memory.write(next ?? 0, at: base + 14)
    }

    /// Entry `index` of an indirect table at `table` (flags: 1 next, 2 write, 4 indirect).
    func tableEntry(_ table: UInt64, _ index: UInt64, address: UInt64, length: UInt32, flags: UInt16, next: UInt16) throws {
        let base = GuestAddress(table + 16 * index)
        try memory.write(address, at: base)
        try memory.write(length, at: base + 8)
        try memory.write(flags, at: base + 12)
        try memory.write(next, at: base + 14)
    }

    /// Makes the chain at `head` available and notifies queue 0 (unless `notify` is false).
    func submit(_ head: UInt16, size: UInt16 = 16, notify: Bool = true) throws {
        try memory.write(head, at: GuestAddress(Self.available + 4 + 2 * UInt64(nextAvailable % size)))
        nextAvailable &+= 1
        try memory.write(nextAvailable, at: GuestAddress(Self.available + 2))
        if notify { set(0x050, 0) }
    }

    /// A block request laid out as Linux does: header, data, status (three descriptors from `first`).
    func request(type: UInt32, sector: UInt64, data: [UInt8]?, dataLength: UInt32, dataWritable: Bool, first: UInt16 = 0) throws {
        let header = GuestAddress(0x8000 + 64 * UInt64(first))
        try memory.write(type, at: header)
        try memory.write(UInt32(0), at: header + 4)
        try memory.write(sector, at: header + 8)
        if let data { try memory.write(data, at: GuestAddress(Self.data)) }
        try descriptor(first, address: header.value, length: 16, writable: false, next: first + 1)
        try descriptor(first + 1, address: Self.data, length: dataLength, writable: dataWritable, next: first + 2)
        try descriptor(first + 2, address: 0x9000 + UInt64(first), length: 1, writable: true)
        try submit(first)
    }

    func requestStatus(first: UInt16 = 0) throws -> UInt8 { try memory.read(UInt8.self, at: GuestAddress(0x9000 + UInt64(first))) }
    var usedIndex: UInt16 { (try? memory.read(UInt16.self, at: GuestAddress(Self.used + 2))) ?? 0 }
    func usedElement(_ slot: UInt64) throws -> (id: UInt32, length: UInt32) {
        (try memory.read(UInt32.self, at: GuestAddress(Self.used + 4 + 8 * slot)), try memory.read(UInt32.self, at: GuestAddress(Self.used + 8 + 8 * slot)))
    }
    var needsReset: Bool { status & MMIOTransport.Status.needsReset != 0 }
}

@Suite("virtio-mmio transport and virtio-blk, driven as a guest driver would (no KVM)")
struct VirtioBlockTests {
    @Test("registers: magic, version 2, block device, vendor; capacity in the config space; VERSION_1 required for FEATURES_OK")
    func registers() throws {
        let driver = try Driver(diskBytes: 10 * 512 + 100)
        #expect(driver.register(0x000) == 0x7472_6976 && driver.register(0x004) == 2 && driver.register(0x008) == 2)
        #expect(driver.register(0x00c) == MMIOTransport.vendorID)
        driver.set(0x014, 1)
        #expect(driver.register(0x010) & 1 == 1, "VERSION_1 (bit 32) offered")
        #expect(driver.register(0x100) == 10, "capacity: whole sectors only")
        // A driver that does not accept VERSION_1 (a legacy one) does not get FEATURES_OK.
        driver.set(0x070, 1 | 2)
        driver.set(0x024, 1); driver.set(0x020, 0)
        driver.set(0x070, 1 | 2 | 8)
        #expect(driver.status & 8 == 0)
        // Nor one that accepts a feature not offered.
        driver.set(0x070, 0); driver.set(0x070, 1 | 2)
        driver.set(0x024, 0); driver.set(0x020, 1 << 7)
        driver.set(0x024, 1); driver.set(0x020, 1)
        driver.set(0x070, 1 | 2 | 8)
        #expect(driver.status & 8 == 0)
        driver.start()
        #expect(driver.status == 1 | 2 | 4 | 8 && driver.register(0x044) == 1)
    }

    @Test("write then read: the file holds the guest's bytes, the guest reads them back; flush and get-id; used ring and interrupts")
    func roundTrip() throws {
        let driver = try Driver()
        driver.start(features: MMIOTransport.featureVersion1 | VirtioBlock.featureFlush)
        let pattern = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try driver.request(type: 1, sector: 3, data: pattern, dataLength: 1024, dataWritable: false)
        #expect(try driver.requestStatus() == 0 && driver.usedIndex == 1)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: driver.file))
        #expect(Array(onDisk[(3 * 512)..<(3 * 512 + 1024)]) == pattern, "the host file has the guest's sectors")
        #expect(try driver.usedElement(0) == (0, 1))
        try driver.memory.write([UInt8](repeating: 0, count: 1024), at: GuestAddress(Driver.data))
        try driver.request(type: 0, sector: 3, data: nil, dataLength: 1024, dataWritable: true, first: 3)
        #expect(try driver.requestStatus(first: 3) == 0)
        #expect(try driver.memory.read(1024, at: GuestAddress(Driver.data)) == pattern)
        #expect(try driver.usedElement(1) == (3, 1025), "read: data and status written")
        try driver.request(type: 4, sector: 0, data: nil, dataLength: 0, dataWritable: false, first: 6)
        #expect(try driver.requestStatus(first: 6) == 0)
        try driver.request(type: 8, sector: 0, data: nil, dataLength: 20, dataWritable: true, first: 9)
        #expect(try driver.memory.read(11, at: GuestAddress(Driver.data)) == Array("tandem-test".utf8))
        #expect(driver.line.count == 4 && driver.register(0x060) & 1 == 1, "edge-triggered: one edge per completed pass, the status bit set")
        driver.set(0x064, 1)
        #expect(driver.register(0x060) == 0 && driver.line.count == 4, "InterruptACK clears the status bit, and sends nothing")
        try driver.request(type: 4, sector: 0, data: nil, dataLength: 0, dataWritable: false, first: 12)
        #expect(driver.line.count == 5 && driver.register(0x060) & 1 == 1, "a new used buffer sends a new edge")
        #expect(driver.transport.completedRequests == 5 && driver.transport.notifyExits == 5)
        #expect(!driver.needsReset)
    }

    @Test("SEG_MAX offered (254); a request over many uneven data buffers moves every byte in order, both ways")
    func scatterGather() throws {
        let driver = try Driver()
        #expect(driver.register(0x010) & UInt32(VirtioBlock.featureSegmentMax) != 0 && driver.register(0x10c) == 254)
        driver.start(features: MMIOTransport.featureVersion1 | VirtioBlock.featureSegmentMax)
        let pattern = (0..<2048).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        try driver.memory.write(pattern, at: GuestAddress(Driver.data))
        // Write: header, then the 2048 bytes in five buffers of 100, 412, 1000, 36 and 500 bytes.
        let header = GuestAddress(0x8000)
        try driver.memory.write(UInt32(1), at: header)
        try driver.memory.write(UInt64(5), at: header + 8)
        let writeSplit: [UInt64] = [100, 412, 1000, 36, 500]
        try driver.descriptor(0, address: header.value, length: 16, writable: false, next: 1)
        var offset: UInt64 = 0
        for (index, length) in writeSplit.enumerated() {
            try driver.descriptor(UInt16(1 + index), address: Driver.data + offset, length: UInt32(length), writable: false, next: UInt16(2 + index))
            offset += length
        }
        try driver.descriptor(6, address: 0x9000, length: 1, writable: true)
        try driver.submit(0)
        #expect(try driver.requestStatus() == 0)
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: driver.file))
        let fileMatches = Array(onDisk[(5 * 512)..<(5 * 512 + 2048)]) == pattern
        #expect(fileMatches, "the file has the five buffers' bytes in order")
        // Read them back into three other buffers, in another place.
        try driver.memory.write(UInt32(0), at: header)
        let readBase: UInt64 = 0x20000, readSplit: [UInt64] = [1, 1535, 512]
        try driver.descriptor(7, address: header.value, length: 16, writable: false, next: 8)
        offset = 0
        for (index, length) in readSplit.enumerated() {
            try driver.descriptor(UInt16(8 + index), address: readBase + offset, length: UInt32(length), writable: true, next: UInt16(9 + index))
            offset += length
        }
        try driver.descriptor(11, address: 0x9001, length: 1, writable: true)
        try driver.submit(7)
        #expect(try driver.memory.read(UInt8.self, at: GuestAddress(0x9001)) == 0)
        let readMatches = try driver.memory.read(2048, at: GuestAddress(readBase)) == pattern
        #expect(readMatches, "the three buffers hold the sectors in order")
        #expect(try driver.usedElement(1) == (7, 2049))
    }

    @Test("INDIRECT_DESC offered; a request in an indirect table (one ring slot) is served, both ways")
    func indirectTable() throws {
        let driver = try Driver()
        #expect(driver.register(0x010) & (1 << 28) != 0, "INDIRECT_DESC offered")
        driver.start(features: MMIOTransport.featureVersion1 | MMIOTransport.featureIndirectDescriptors)
        let pattern = (0..<1024).map { UInt8(truncatingIfNeeded: $0 &* 3 &+ 1) }
        try driver.memory.write(pattern, at: GuestAddress(Driver.data))
        try driver.memory.write(UInt32(1), at: GuestAddress(0x8000))
        try driver.memory.write(UInt64(2), at: GuestAddress(0x8008))
        let table: UInt64 = 0x4000
        try driver.tableEntry(table, 0, address: 0x8000, length: 16, flags: 1, next: 1)
        try driver.tableEntry(table, 1, address: Driver.data, length: 512, flags: 1, next: 2)
        try driver.tableEntry(table, 2, address: Driver.data + 512, length: 512, flags: 1, next: 3)
        try driver.tableEntry(table, 3, address: 0x9000, length: 1, flags: 2, next: 0)
        try driver.indirect(0, table: table, length: 64)
        try driver.submit(0)
        #expect(try driver.requestStatus() == 0 && !driver.needsReset, "\(driver.transport.failure ?? "")")
        let onDisk = try Data(contentsOf: URL(fileURLWithPath: driver.file))
        let written = Array(onDisk[1024..<2048]) == pattern
        #expect(written, "the file has the table's two buffers")
        // Read back through another table, in the same ring slot's successor.
        try driver.memory.write(UInt32(0), at: GuestAddress(0x8000))
        let other: UInt64 = 0x5000
        try driver.tableEntry(other, 0, address: 0x8000, length: 16, flags: 1, next: 1)
        try driver.tableEntry(other, 1, address: 0x20000, length: 1024, flags: 1 | 2, next: 2)
        try driver.tableEntry(other, 2, address: 0x9001, length: 1, flags: 2, next: 0)
        try driver.indirect(1, table: other, length: 48)
        try driver.submit(1)
        let read = try driver.memory.read(1024, at: GuestAddress(0x20000)) == pattern
        let element = try driver.usedElement(1)
        #expect(read && driver.usedIndex == 2 && element == (1, 1025))
    }

    @Test("a read-only disk: opened read-only on the host, RO offered, writes fail with IOERR and the file is unchanged")
    func readOnly() throws {
        let driver = try Driver(readOnly: true)
        #expect(fcntl(driver.disk.fd.rawValue, F_GETFL) & O_ACCMODE == O_RDONLY)
        #expect(driver.disk.features & VirtioBlock.featureReadOnly != 0)
        driver.start(features: MMIOTransport.featureVersion1 | VirtioBlock.featureReadOnly)
        try driver.request(type: 1, sector: 0, data: [UInt8](repeating: 0xee, count: 512), dataLength: 512, dataWritable: false)
        #expect(try driver.requestStatus() == 1)
        #expect(try Data(contentsOf: URL(fileURLWithPath: driver.file)).allSatisfy { $0 == 0 })
    }

    /// Requests a disk cannot serve: completed with an error status, the device goes on.
    @Test("requests the disk cannot serve complete with IOERR or UNSUPP and the device goes on", arguments: [
        ("past the end of the disk", UInt32(0), UInt64(63), UInt32(1024), UInt8(1)),
        ("a sector far past the end", UInt32(0), UInt64.max, UInt32(512), UInt8(1)),
        ("not whole sectors", UInt32(0), UInt64(0), UInt32(100), UInt8(1)),
        ("a data buffer of almost 4 GiB", UInt32(0), UInt64(0), UInt32.max - 4095, UInt8(1)),
        ("an unknown request type", UInt32(99), UInt64(0), UInt32(512), UInt8(2)),
    ])
    func refusedRequests(label: String, type: UInt32, sector: UInt64, length: UInt32, status: UInt8) throws {
        let driver = try Driver()
        driver.start()
        try driver.request(type: type, sector: sector, data: nil, dataLength: length, dataWritable: true)
        #expect(try driver.requestStatus() == status, "\(label)")
        #expect(!driver.needsReset && driver.usedIndex == 1, "\(label): the device goes on")
    }

    /// Drivers that break the rules: DEVICE_NEEDS_RESET, a configuration interrupt, nothing
    /// served; a reset makes the device usable again.
    static let reasons = [
        "a descriptor loop": "longer than its table (16): a loop", "a head outside the queue": "chain head 40 is outside the queue",
        "a next outside the queue": "points to 500, outside its table of 16", "a header outside guest RAM": "outside guest RAM",
        "a queue size not a power of two": "queue size 12: must be a power of two", "a used ring outside guest RAM": "used ring at 0x10000000000",
        "notified before DRIVER_OK": "notified before DRIVER_OK", "the available index far ahead": "available index 1000 is 1000 ahead",
        "no writable byte for the status": "no writable byte for its status", "an indirect descriptor not accepted": "is indirect, which the driver did not accept",
        "an indirect table inside an indirect table": "inside an indirect table", "an indirect descriptor with a next": "is indirect and has a next",
        "an indirect table of partial descriptors": "an indirect table of 24 bytes", "an indirect table outside guest RAM": "not aligned or outside guest RAM",
        "a loop inside an indirect table": "longer than its table (2): a loop", "a next outside an indirect table": "points to 2, outside its table of 2",
        "a readable after a writable": "a readable buffer after a writable one", "a chain of 4 GiB": "4 GiB or more",
        "a buffer at the top of the address space": "outside guest RAM",
    ]

    @Test("a hostile driver gets DEVICE_NEEDS_RESET, never a crash, the reason named; a reset recovers", arguments: [
        "a descriptor loop", "a head outside the queue", "a next outside the queue", "a header outside guest RAM",
        "a queue size not a power of two", "a used ring outside guest RAM", "notified before DRIVER_OK",
        "the available index far ahead", "no writable byte for the status", "an indirect descriptor not accepted", "a readable after a writable",
        "a chain of 4 GiB", "a buffer at the top of the address space", "an indirect table inside an indirect table",
        "an indirect descriptor with a next", "an indirect table of partial descriptors", "an indirect table outside guest RAM",
        "a loop inside an indirect table", "a next outside an indirect table",
    ])
    func hostile(_ label: String) throws {
        let driver = try Driver()
        switch label {
        case "a descriptor loop":
            driver.start()
            try driver.descriptor(0, address: 0x8000, length: 16, writable: false, next: 1)
            try driver.descriptor(1, address: Driver.data, length: 512, writable: false, next: 0)
            try driver.submit(0)
        case "a head outside the queue":
            driver.start()
            try driver.submit(40)
        case "a next outside the queue":
            driver.start()
            try driver.descriptor(0, address: 0x8000, length: 16, writable: false, next: 500)
            try driver.submit(0)
        case "a header outside guest RAM":
            driver.start()
            try driver.descriptor(0, address: 1 << 40, length: 16, writable: false, next: 1)
            try driver.descriptor(1, address: 0x9000, length: 1, writable: true)
            try driver.submit(0)
        case "a queue size not a power of two":
            driver.start(size: 12)
        case "a used ring outside guest RAM":
            driver.start(used: 1 << 40)
        case "notified before DRIVER_OK":
            driver.set(0x070, 1 | 2 | 8)
            driver.set(0x050, 0)
        case "the available index far ahead":
            driver.start()
            try driver.memory.write(UInt16(1000), at: GuestAddress(Driver.available + 2))
            driver.set(0x050, 0)
        case "no writable byte for the status":
            driver.start()
            try driver.descriptor(0, address: 0x8000, length: 16, writable: false)
            try driver.submit(0)
        case "an indirect descriptor not accepted":
            driver.start()
            try driver.memory.write(UInt16(4), at: GuestAddress(Driver.descriptors + 12))
            try driver.submit(0)
        case "an indirect table inside an indirect table", "an indirect descriptor with a next", "an indirect table of partial descriptors",
             "an indirect table outside guest RAM", "a loop inside an indirect table", "a next outside an indirect table":
            driver.start(features: MMIOTransport.featureVersion1 | MMIOTransport.featureIndirectDescriptors)
            let table: UInt64 = 0x4000
            let (address, length): (UInt64, UInt32) = switch label {
            case "an indirect table of partial descriptors": (table, 24)
            case "an indirect table outside guest RAM": (1 << 40, 32)
            default: (table, 32)
            }
            try driver.indirect(0, table: address, length: length, next: label == "an indirect descriptor with a next" ? 1 : nil)
            // Two descriptors in the table: header → second, which is what each case breaks.
            try driver.tableEntry(table, 0, address: 0x8000, length: 16, flags: 1, next: 1)
            switch label {
            case "an indirect table inside an indirect table": try driver.tableEntry(table, 1, address: table, length: 32, flags: 4, next: 0)
            case "a loop inside an indirect table": try driver.tableEntry(table, 1, address: 0x9000, length: 1, flags: 1 | 2, next: 0)
            case "a next outside an indirect table": try driver.tableEntry(table, 1, address: 0x9000, length: 1, flags: 1 | 2, next: 2)
            default: try driver.tableEntry(table, 1, address: 0x9000, length: 1, flags: 2, next: 0)
            }
            try driver.submit(0)
        case "a buffer at the top of the address space":
            // (Found by the fuzz target: address + offset overflowed and trapped the VMM.)
            driver.start()
            try driver.memory.write(UInt32(8), at: GuestAddress(0x8000))
            try driver.descriptor(0, address: 0x8000, length: 16, writable: false, next: 1)
            try driver.descriptor(1, address: UInt64.max - 3, length: 21, writable: true)
            try driver.submit(0)
        case "a chain of 4 GiB":
            driver.start()
            try driver.descriptor(0, address: 0x8000, length: 16, writable: false, next: 1)
            try driver.descriptor(1, address: Driver.data, length: UInt32.max, writable: true, next: 2)
            try driver.descriptor(2, address: 0x9000, length: 1, writable: true)
            try driver.submit(0)
        default:
            driver.start()
            try driver.descriptor(0, address: 0x9000, length: 1, writable: true, next: 1)
            try driver.descriptor(1, address: 0x8000, length: 16, writable: false)
            try driver.submit(0)
        }
        #expect(driver.needsReset, "\(label): \(driver.status)")
        #expect(driver.transport.failure?.contains(Self.reasons[label]!) == true && driver.register(0x060) & 2 == 2,
                "\(label): said (\(driver.transport.failure ?? "nothing")), with a configuration interrupt")
        #expect(driver.usedIndex == 0, "\(label): nothing served")
        // Reset and start again: the device serves a good request.
        driver.nextAvailable = 0
        try driver.memory.write(UInt16(0), at: GuestAddress(Driver.available + 2))
        driver.start()
        #expect(!driver.needsReset && driver.transport.failure == nil, "\(label): the reset did not clear it")
        try driver.request(type: 0, sector: 0, data: nil, dataLength: 512, dataWritable: true)
        #expect(try driver.requestStatus() == 0 && driver.usedIndex == 1, "\(label): not usable after the reset")
    }

    @Test("a request in progress (on the device thread) leaves the registers free for the vCPUs; a reset waits for it to end")
    func requestInProgress() throws {
        let slow = SlowDevice()
        let driver = try Driver(device: slow)
        driver.start()
        try driver.descriptor(0, address: 0x8000, length: 16, writable: false)
        try driver.submit(0, notify: false)
        let served = DispatchSemaphore(value: 0)
        Thread.detachNewThread { driver.transport.serve(queue: 0); served.signal() }
        try #require(slow.entered.wait(timeout: .now() + 5) == .success, "the device thread never started the request")
        // A vCPU reading and acknowledging registers meanwhile is not held up by the request.
        let registers = DispatchSemaphore(value: 0)
        Thread.detachNewThread { _ = driver.register(0x060); _ = driver.status; driver.set(0x064, 1); registers.signal() }
        #expect(registers.wait(timeout: .now() + 2) == .success, "register access waited for the device's I/O")
        // A reset must not return while the device still works on the queue the driver takes back.
        let reset = DispatchSemaphore(value: 0)
        Thread.detachNewThread { driver.set(0x070, 0); reset.signal() }
        #expect(reset.wait(timeout: .now() + 0.3) == .timedOut, "the reset did not wait for the request in progress")
        slow.finish.signal()
        #expect(served.wait(timeout: .now() + 5) == .success && reset.wait(timeout: .now() + 5) == .success)
        #expect(driver.usedIndex == 1 && driver.status == 0 && !driver.transport.queues[0].ready,
                "the request completed before the reset took the queue back")
        #expect(driver.transport.notifyExits == 0, "served through serve(queue:), as the device thread does")
    }

    @Test("a disk that cannot be opened, or is not a regular file, is an error naming it")
    func badDisk() throws {
        #expect(throws: SystemError.self) { try VirtioBlock(path: "/nonexistent/disk.img", readOnly: true) }
        do {
            _ = try VirtioBlock(path: "/dev/null", readOnly: true)
            Issue.record("/dev/null was taken for a disk")
        } catch {
            #expect(error.description.contains("/dev/null"))
        }
    }
}
