#if canImport(Glibc)
import Glibc
#endif

/// A `/proc` file of `Key:<spaces>value` lines (`/proc/self/status`, `/proc/meminfo`,
/// `/proc/cpuinfo`), read once and searched as bytes. A VM's exit report reads two of them after
/// the guest has finished, before the exit status: splitting them into Swift strings cost ~0.2 ms.
public struct ProcFields: Sendable {
    /// The file's bytes (empty when it cannot be read).
    public let bytes: [UInt8]

    public init(path: String) {
        bytes = (try? Files.read(path, limit: 1 << 22)) ?? []
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    /// The value of the first line whose key is `key`, without the key, the colon, the spaces and
    /// tabs around it, or nil when no line has that key.
    public func value(_ key: String) -> ArraySlice<UInt8>? {
        let wanted = Array(key.utf8)
        var lineStart = 0
        while lineStart < bytes.count {
            var lineEnd = lineStart
            while lineEnd < bytes.count, bytes[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            if lineEnd - lineStart > wanted.count, bytes[lineStart..<lineStart + wanted.count].elementsEqual(wanted) {
                var at = lineStart + wanted.count
                while at < lineEnd, bytes[at] == UInt8(ascii: " ") || bytes[at] == UInt8(ascii: "\t") { at += 1 }
                if at < lineEnd, bytes[at] == UInt8(ascii: ":") {
                    at += 1
                    while at < lineEnd, bytes[at] == UInt8(ascii: " ") || bytes[at] == UInt8(ascii: "\t") { at += 1 }
                    var end = lineEnd
                    while end > at, bytes[end - 1] == UInt8(ascii: " ") || bytes[end - 1] == UInt8(ascii: "\t") { end -= 1 }
                    return bytes[at..<end]
                }
            }
            lineStart = lineEnd + 1
        }
        return nil
    }

    /// The leading decimal number of `key`'s value (`VmHWM:  5120 kB` → 5120), or nil.
    public func number(_ key: String) -> UInt64? {
        guard let value = value(key) else { return nil }
        var result: UInt64 = 0
        var digits = 0
        for byte in value {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { break }
            let (times, overflow1) = result.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            result = sum
            digits += 1
        }
        return digits > 0 ? result : nil
    }

    /// Whether `key`'s value has `word` among its space-separated words (`flags` … `svm` …).
    public func hasWord(_ key: String, _ word: String) -> Bool {
        guard let value = value(key) else { return false }
        let wanted = Array(word.utf8)
        var start = value.startIndex
        while start < value.endIndex {
            var end = start
            while end < value.endIndex, value[end] != UInt8(ascii: " ") { end += 1 }
            if value[start..<end].elementsEqual(wanted) { return true }
            start = end + 1
        }
        return false
    }
}
