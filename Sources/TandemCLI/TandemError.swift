import ArgumentParser
import TandemLaunch

/// Ends a command with one clear line on stderr and Tandem's error status (125, see docs/exit-status.md).
func fail(_ message: String) -> ExitCode {
    ExitCode(VMRunner.fail(message))
}
