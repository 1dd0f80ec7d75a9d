import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// One vCPU's exit counts by key (a port, an MMIO page), in a table mapped before the vCPU runs:
/// counting an exit allocates nothing and needs no generic type at run time. (A Swift
/// `Dictionary`'s first insert cost ~0.1 ms here — the runtime builds its type metadata and looks
/// up the key's `Hashable` conformance among every conformance of the binary — and that was in the
/// vCPU thread, between the guest's first exit and its answer.)
///
/// At most `limit` distinct keys are told apart; exits at any other key are counted in
/// `untracked`, so a hostile guest cannot grow the VMM's memory through its own counters. The table
/// is anonymous memory mapped untouched: a guest that never exits by MMIO costs that table no
/// resident page.
final class ExitTally {
    let limit: Int
    private(set) var distinct = 0
    private(set) var untracked: UInt64 = 0
    /// Open addressing with linear probing over `mask + 1` slots of two words, (key, count); a
    /// slot is empty while its count is 0. At most half full, so probes stay short.
    private let slots: UnsafeMutablePointer<UInt64>
    private let mask: Int
    private let bytes: Int

    /// `what` names the table in the error when it cannot be mapped.
    init(limit: Int, what: String) throws(SystemError) {
        precondition(limit > 0, "an exit tally tracks at least one key")
        var capacity = 1
        while capacity < 2 * limit { capacity <<= 1 }
        bytes = capacity * 2 * MemoryLayout<UInt64>.stride
        guard let base = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
            throw SystemError("mmap", "\(bytes) bytes for \(what)")
        }
        slots = base.bindMemory(to: UInt64.self, capacity: capacity * 2)
        mask = capacity - 1
        self.limit = limit
    }

    deinit { munmap(slots, bytes) }

    /// Where the probe for `key` starts. Fibonacci hashing: ports are small and pages are
    /// multiples of 4 KiB; the multiply spreads both over the table's high bits.
    private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9e37_79b9_7f4a_7c15) >> 40) & mask
    }

    /// Counts one exit at `key`.
    func count(_ key: UInt64) {
        var index = home(key)
        while true {
            let count = slots[2 * index + 1]
            if count == 0 {
                guard distinct < limit else { untracked += 1; return }
                slots[2 * index] = key
                slots[2 * index + 1] = 1
                distinct += 1
                return
            }
            if slots[2 * index] == key {
                slots[2 * index + 1] = count + 1
                return
            }
            index = (index + 1) & mask
        }
    }

    /// The count at `key` (0 when not tracked).
    subscript(key: UInt64) -> UInt64 {
        var index = home(key)
        while slots[2 * index + 1] != 0 {
            if slots[2 * index] == key { return slots[2 * index + 1] }
            index = (index + 1) & mask
        }
        return 0
    }

    /// Calls `body` with every tracked key and its count, in table order.
    func forEach(_ body: (_ key: UInt64, _ count: UInt64) -> Void) {
        guard distinct > 0 else { return }  // no read of a table never touched
        for index in 0...mask where slots[2 * index + 1] != 0 { body(slots[2 * index], slots[2 * index + 1]) }
    }
}
