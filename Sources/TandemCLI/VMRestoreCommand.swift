import ArgumentParser
import MicroVM
import TandemLaunch

/// `tandem vm restore DIR`: a snapshotted microVM carries on where it was.
struct VMRestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a microVM from a snapshot directory (`tandem vm snapshot`) and run it on.",
        discussion: """
        The guest's RAM maps the snapshot's memory file copy-on-write (pages load as the guest touches \
        them); the state file is checked (magic, version, CRC-64, this host's CPU) before anything runs. \
        Console and exit status as for `tandem vm run`.
        """)

    @Argument(help: ArgumentHelp("The snapshot directory.", valueName: "dir"))
    var directory: String

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Stop the guest after this many seconds (0: never).", valueName: "seconds"))
    var timeout: Double = 0

    @Flag(name: .long, help: "Print a JSON report (schema tandem.vm-run/1) on stdout; the guest console goes to stderr.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("A control socket for the restored VM (as `vm run --api-sock`).", valueName: "path"))
    var apiSock: String?

    @Option(name: .long, help: "The KVM device.")
    var kvmDevice = "/dev/kvm"

    @Flag(name: .long, help: "Restore a Linux guest even where /dev/kvm has no hardware virtualisation (as `vm run --allow-emulated`).")
    var allowEmulated = false

    func run() throws {
        VMRunner.runAndExit(VMRunOptions(timeout: timeout, json: json, kvmDevice: kvmDevice, allowEmulated: allowEmulated, apiSocket: apiSock, restore: directory), processStart: nil)
    }
}
