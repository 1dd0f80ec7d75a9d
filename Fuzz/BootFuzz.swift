// libFuzzer target for the Linux loader (a kernel image is outside data: `--kernel PATH`): the
// bzImage header parser and the loader that places the kernel, initrd, command line and zero
// page in guest RAM. The first input byte picks the RAM size (1-16 MiB), the second the initrd's
// length; the rest is the kernel file. Any input must load or fail with a message: never crash,
// and a load keeps its promises (the entry point and the initrd inside RAM).
// Built by `make fuzz` against the BootLoader module compiled with -sanitize=fuzzer.
import BootLoader
import GuestMemory

nonisolated(unsafe) var memories: [Int: GuestMemory] = [:]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBoot(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size >= 2 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let mebibytes = Int(bytes[0] % 16) + 1
    let memory: GuestMemory
    if let cached = memories[mebibytes] {
        memory = cached
    } else {
        memory = try! GuestMemory(ranges: [(GuestAddress(0), mebibytes << 20)])
        memories[mebibytes] = memory
    }
    let initrd = [UInt8](repeating: 0x5a, count: Int(bytes[1]) * 4096)
    do {
        let boot = try LinuxLoader.load(kernel: Array(bytes[2...]), kernelName: "fuzz", initrd: initrd.isEmpty ? nil : initrd,
                                        commandLine: "console=ttyS0", into: memory)
        let end = UInt64(mebibytes << 20)
        precondition(boot.entry.value < end, "an entry point outside RAM: \(boot.entry)")
        if let placed = boot.initrd { precondition(placed.address.value + UInt64(placed.size) <= end, "an initrd past the end of RAM") }
    } catch {
        precondition(!error.description.isEmpty, "an error without a message")
    }
    return 0
}
