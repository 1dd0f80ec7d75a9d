import HostOS
import MicroVM
#if canImport(Glibc)
import Glibc
#endif

/// The `tandem` executable's entry. The launch path of a VM is the product's hot path, so `tandem`
/// itself is lean: no ArgumentParser, no Foundation (ArgumentParser 1.8 links FoundationEssentials,
/// 12 MB of code whose start-up and resident pages would cost more than a tiny VM's whole run).
/// A well-formed `tandem vm run` is parsed and run here; every other command line — other
/// commands, help, anything this parser does not accept — is handed, unchanged, to `tandem-cli`
/// (the full ArgumentParser command tree, installed next to `tandem`), so help and error
/// messages have one author.
public enum Launcher {
    /// Tandem's version (`tandem --version`, and tandem-cli's).
    public static let version = "0.1.0"

    /// CLOCK_MONOTONIC ns of the process start (main's first statement).
    nonisolated(unsafe) public static var processStart: UInt64?

    public static func main(_ arguments: [String]) -> Never {
        if arguments.count == 2, arguments[1] == "--version" {
            StandardOutput.write(version + "\n")
            exit(0)
        }
        if arguments.count > 2, arguments[1] == "vm", arguments[2] == "run",
           let options = FastVMRunParser.parse(arguments.dropFirst(3)) {
            VMRunner.runAndExit(options, processStart: processStart)
        }
        if arguments.count > 3, arguments[1] == "vm", arguments[2] == "restore",
           let options = FastVMRestoreParser.parse(arguments.dropFirst(3)) {
            VMRunner.runAndExit(options, processStart: processStart)
        }
        if arguments.count > 3, arguments[1] == "vm", let request = VMControl.parse(arguments[2], arguments.dropFirst(3)) {
            exit(VMControl.run(request))
        }
        if arguments.count > 2, arguments[1] == "ctr", arguments[2] == "run",
           let options = FastCtrRunParser.parse(arguments.dropFirst(3)) {
            exit(CtrRunner.run(options, processStart: processStart))
        }
        // `tandem run IMAGE [--as container] [options] [-- CMD]`: the image first, as documented.
        if arguments.count > 2, arguments[1] == "run", !arguments[2].hasPrefix("-") {
            var rest = Array(arguments.dropFirst(3))
            let end = rest.firstIndex(of: "--") ?? rest.count
            if let at = rest[..<end].firstIndex(of: "--as"), at + 1 < end, rest[at + 1] == "container" {
                rest.removeSubrange(at...(at + 1))
            } else if let at = rest[..<end].firstIndex(of: "--as=container") {
                rest.remove(at: at)
            }
            // Another backend (or a second --as) is tandem-cli's.
            if !rest.prefix(while: { $0 != "--" }).contains(where: { $0 == "--as" || $0.hasPrefix("--as=") }),
               var options = FastCtrRunParser.parse(rest[...]), options.image == nil, options.rootfs == nil, options.workload == nil {
                options.imageReference = arguments[2]
                exit(CtrRunner.run(options, processStart: processStart))
            }
        }
        execFullCLI(arguments)
    }

    /// The ArgumentParser CLI's executable: next to this one.
    public static var fullCLIPath: String? {
        Files.currentExecutable().map { Files.directory(of: $0) + "/tandem-cli" }
    }

    static func execFullCLI(_ arguments: [String]) -> Never {
        guard let path = fullCLIPath, Files.kind(path) == .regular else {
            StandardError.line("tandem: error: tandem-cli is missing next to this tandem executable (\(fullCLIPath ?? "?")): reinstall Tandem (make build)")
            exit(ExitStatus.tandemError)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = (["tandem"] + arguments.dropFirst()).map { strdup($0) } + [nil]
        execv(path, argv)
        StandardError.line("tandem: error: \(SystemError("execv", path))")
        exit(ExitStatus.tandemError)
    }
}
