import ArgumentParser
import HostFacts
import HostOS
import MicroVM
#if canImport(Glibc)
import Glibc
#endif

/// `tandem vm run`: boot a guest with Tandem's own VMM on /dev/kvm.
struct VMRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Boot a guest in a microVM with Tandem's own KVM VMM.",
        discussion: """
        The guest's console is streamed to stdout. Exit status: the guest's own status (0-255), or \
        124 when --timeout stopped it, 125 when Tandem failed, 126 when the guest crashed its vCPU \
        (triple fault, KVM internal error), 128+N after signal N (Ctrl-C: 130).
        Tiny guests: \(TinyGuests.catalog.map { "\($0.name) (\($0.summary))" }.joined(separator: "; ")).
        """
    )

    @Option(name: .long, help: ArgumentHelp("A tiny bare guest: a name from `make guests`, or a path to a flat binary.", valueName: "name|path"))
    var tiny: String

    @Option(name: .long, help: "CPU mode a flat binary starts in (the built-in guests know their own).")
    var mode: CPUModeArgument?

    @Option(name: .long, help: ArgumentHelp("Guest RAM in MiB (tiny guests: \(VMConfig.minimumTinyMemoryMiB)-\(VMConfig.maximumTinyMemoryMiB)).", valueName: "MiB"))
    var memory: Int = VMConfig.defaultTinyMemoryMiB

    @Option(name: .long, help: ArgumentHelp("A number handed to the tiny guest in RDI (compute: the sieve size; exit: the status).", valueName: "n"))
    var arg: UInt64?

    @Option(name: .long, help: ArgumentHelp("Stop the guest after this many seconds (0: never).", valueName: "seconds"))
    var timeout: Double = 0

    @Flag(name: .long, help: "Print a JSON report (schema tandem.vm-run/1) on stdout; the guest console goes to stderr.")
    var json = false

    @Option(name: .long, help: "The KVM device.")
    var kvmDevice = "/dev/kvm"

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        guard timeout >= 0, timeout.isFinite else { throw fail("--timeout \(timeout): must be 0 (no limit) or a positive number of seconds") }

        let resolved: (path: String, mode: CPUMode?)
        switch TinyGuests.resolve(tiny) {
        case .success(let found): resolved = found
        case .failure(let error): throw fail(error.description)
        }
        let image = try readImage(resolved.path)
        let cpuMode = mode?.value ?? resolved.mode ?? .long
        let argument = arg ?? (tiny == "compute" ? 10_000 : 0)

        let console = FileConsoleSink(fd: json ? 2 : 1)
        let config = VMConfig(boot: .flat(image: image, name: resolved.path, mode: cpuMode, argument: argument),
                              memoryMiB: memory,
                              timeoutNanoseconds: timeout > 0 ? UInt64(timeout * 1e9) : nil)
        let machine: Machine
        do {
            machine = try Machine.build(config, console: console, processStart: Launch.processStart, kvmPath: kvmDevice)
        } catch {
            throw fail(error.description)
        }
        let report = machine.run()
        describe(report.outcome)
        if json {
            let mode = HostFacts.probeKVMMode(kvmPath: kvmDevice)
            StandardOutput.write(report.json(hostMode: mode.rawValue).serialized() + "\n")
        }
        throw ExitCode(report.exitStatus)
    }

    /// Reads the image, with the checks a user needs named: missing, a directory, empty.
    private func readImage(_ path: String) throws -> [UInt8] {
        switch Files.kind(path) {
        case .missing: throw fail("guest image \(path) does not exist")
        case .directory: throw fail("guest image \(path) is a directory, not a flat binary")
        case .regular, .other: break
        }
        do {
            let bytes = try Files.read(path, limit: VMConfig.maximumTinyMemoryMiB << 20)
            if bytes.isEmpty { throw fail("guest image \(path) is empty") }
            return bytes
        } catch let error as SystemError {
            throw fail("cannot read guest image: \(error)")
        }
    }

    /// One line on stderr for outcomes a person must not miss.
    private func describe(_ outcome: RunOutcome) {
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

/// `--mode long|real`.
struct CPUModeArgument: ExpressibleByArgument {
    let value: CPUMode
    init?(argument: String) {
        guard let mode = CPUMode(rawValue: argument) else { return nil }
        value = mode
    }
    static var allValueStrings: [String] { CPUMode.allCases.map(\.rawValue) }
}
