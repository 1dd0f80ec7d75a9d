import HostFacts
import HostOS
import MicroVM
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm run`'s work, shared by the lean launcher and the full CLI: resolve the guest, build
/// the machine, run it, report. Returns the process exit status (docs/exit-status.md); every
/// failure prints one line on stderr first.
public enum VMRunner {
    public static func run(_ options: VMRunOptions, processStart: UInt64?) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        guard options.timeout >= 0, options.timeout.isFinite else {
            return fail("--timeout \(options.timeout): must be 0 (no limit) or a positive number of seconds")
        }
        let resolved: (path: String, mode: CPUMode?)
        switch TinyGuests.resolve(options.tiny) {
        case .success(let found): resolved = found
        case .failure(let error): return fail(error.description)
        }
        let image: [UInt8]
        switch readImage(resolved.path) {
        case .success(let bytes): image = bytes
        case .failure(let message): return fail(message.text)
        }
        let mode = options.mode ?? resolved.mode ?? .long
        let argument = options.arg ?? (options.tiny == "compute" ? TinyGuests.defaultComputeSize : 0)

        let console = FileConsoleSink(fd: options.json ? 2 : 1)
        let config = VMConfig(boot: .flat(image: image, name: resolved.path, mode: mode, argument: argument),
                              memoryMiB: options.memory,
                              timeoutNanoseconds: options.timeout > 0 ? UInt64(options.timeout * 1e9) : nil)
        let machine: Machine
        do {
            machine = try Machine.build(config, console: console, processStart: processStart, kvmPath: options.kvmDevice)
        } catch {
            return fail(error.description)
        }
        let report = machine.run()
        describe(report.outcome)
        if options.json {
            let mode = HostFacts.probeKVMMode(kvmPath: options.kvmDevice)
            StandardOutput.write(report.json(hostMode: mode.rawValue).serialized() + "\n")
        }
        return report.exitStatus
    }

    /// One clear line on stderr, and Tandem's error status.
    public static func fail(_ message: String) -> Int32 {
        StandardError.line("tandem: error: \(message)")
        return ExitStatus.tandemError
    }

    struct Message: Error { let text: String }

    /// Reads the image, with the checks a user needs named: missing, a directory, empty.
    static func readImage(_ path: String) -> Result<[UInt8], Message> {
        switch Files.kind(path) {
        case .missing: return .failure(Message(text: "guest image \(path) does not exist"))
        case .directory: return .failure(Message(text: "guest image \(path) is a directory, not a flat binary"))
        case .regular, .other: break
        }
        do {
            let bytes = try Files.read(path, limit: VMConfig.maximumTinyMemoryMiB << 20)
            return bytes.isEmpty ? .failure(Message(text: "guest image \(path) is empty")) : .success(bytes)
        } catch {
            return .failure(Message(text: "cannot read guest image: \(error)"))
        }
    }

    /// One line on stderr for outcomes a person must not miss.
    static func describe(_ outcome: RunOutcome) {
        switch outcome {
        case .exited, .halted: break
        case .timedOut(let nanoseconds):
            StandardError.line("tandem: guest stopped: it ran past --timeout \(Double(nanoseconds) / 1e9) s")
        case .interrupted(let signal):
            StandardError.line("tandem: guest stopped by signal \(signal)")
        case .crashed(let crash):
            StandardError.line("tandem: \(crash)")
        case .vmmFailed(let message):
            StandardError.line("tandem: error: VMM failed: \(message)")
        }
    }
}
