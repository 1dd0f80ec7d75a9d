// libFuzzer target for layer unpacking (a layer is attacker-controlled): gunzip or zstd (when the
// input starts as gzip or a zstd frame does), the tar reader and the unpacker, into a scratch directory. Any input
// must unpack or fail with a message — never crash or hang — and nothing may appear outside the
// scratch root: its parent holds only the root and an empty sentinel directory after every run.
// Built by `make fuzz` against the ImageImport module compiled with -sanitize=fuzzer.
import Glibc
import ImageImport
import Images

nonisolated(unsafe) var scratch: String = ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzLayer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if scratch.isEmpty {
        scratch = "/tmp/tandem-fuzz-layer-\(getpid())"
        mkdir(scratch, 0o700)
        mkdir(scratch + "/sentinel", 0o700)
    }
    let root = scratch + "/root"
    mkdir(root, 0o755)
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    do {
        var stream: any ByteStream = BytesStream(bytes)
        let compression = Compression.sniff(Array(bytes.prefix(4)))
        if compression != .none { stream = try DecompressingStream(stream, compression, name: compression.rawValue) }
        _ = try LayerUnpacker.unpack(TarReader(stream, name: "fuzz"), into: root)
    } catch {
        precondition(!error.description.isEmpty, "an error without a message")
    }
    let parent = opendir(scratch)!
    var names: [String] = []
    while let entry = readdir(parent) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    closedir(parent)
    precondition(names.sorted() == ["root", "sentinel"], "written outside the layer's root: \(names)")
    let sentinel = opendir(scratch + "/sentinel")!
    var inside = 0
    while readdir(sentinel) != nil { inside += 1 }
    closedir(sentinel)
    precondition(inside == 2, "written into the sentinel directory")
    let fd = open(scratch, O_RDONLY | O_DIRECTORY)
    try? FileTree.removeForFuzzing(fd, "root")
    close(fd)
    return 0
}
