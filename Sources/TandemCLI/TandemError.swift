import ArgumentParser
import HostOS
import MicroVM

/// Ends a command with one clear line on stderr and Tandem's error status (125, see docs/exit-status.md).
func fail(_ message: String) -> ExitCode {
    StandardError.line("tandem: error: \(message)")
    return ExitCode(ExitStatus.tandemError)
}
