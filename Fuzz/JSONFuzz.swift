// libFuzzer target for HostOS's JSON reader (config.json, state files and launchers' reports are
// outside data). Built by `make fuzz` with swiftc -sanitize=fuzzer from the reader's own sources.
// Any input must give a value or a JSONParseError: never a crash, a hang or an overflow; a value
// read must serialise to text that reads again.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSON(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let value = try? JSON.parse(text) else { return 0 }
    do {
        _ = try JSON.parse(value.serialized())
    } catch {
        fatalError("\(value.serialized()) does not read again: \(error)")
    }
    return 0
}
