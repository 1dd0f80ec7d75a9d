// libFuzzer target for the microVM snapshot state file reader (MicroVM/SnapshotFile.swift): a
// state file is hostile input (`tandem vm restore DIR`). Built by `make fuzz` from the reader's
// own source. Each input is read twice: as a whole file, and as a payload wrapped in a valid
// header and CRC-64 (random bytes almost never carry a right CRC, and the records behind it must
// be fuzzed too). Any input must give a state or a SnapshotFormatError: never a crash, a hang or an
// allocation the file's size does not justify; a state read must encode to the bytes it came from.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSnapshot(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    check(bytes)
    var wrapped = SnapshotState.magic
    withUnsafeBytes(of: SnapshotState.version.littleEndian) { wrapped += $0 }
    withUnsafeBytes(of: UInt64(bytes.count).littleEndian) { wrapped += $0 }
    wrapped += bytes
    withUnsafeBytes(of: CRC64.checksum(wrapped).littleEndian) { wrapped += $0 }
    check(wrapped)
    return 0
}

func check(_ bytes: [UInt8]) {
    guard let state = try? SnapshotState.decode(bytes) else { return }
    let encoded = state.encode()
    if encoded != bytes { fatalError("a state read from \(bytes.count) bytes encodes to \(encoded.count) other bytes") }
}
