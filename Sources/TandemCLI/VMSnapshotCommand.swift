import ArgumentParser
import TandemLaunch

/// `tandem vm snapshot SOCKET --out DIR`: the running microVM's RAM and state into DIR.
struct VMSnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Snapshot a microVM through its control socket: DIR/memory (its RAM, sparse) and DIR/state (vCPUs, interrupt controllers, clock, devices).",
        discussion: """
        A running VM is paused for the snapshot and resumed after it (--leave-paused keeps it paused); \
        a paused one stays paused. `tandem vm restore DIR` brings the guest back where it was, as many \
        times as wanted (the memory file is never written through). Not for VMs with virtio devices yet.
        """)
    @Argument(help: ArgumentHelp("The VM's control socket (`tandem vm run --api-sock PATH`).", valueName: "socket"))
    var socket: String

    @Option(name: .long, help: ArgumentHelp("The snapshot directory (made if missing; its files are replaced).", valueName: "dir"))
    var out: String

    @Flag(name: .long, help: "Leave the VM paused after the snapshot.")
    var leavePaused = false

    func run() throws {
        throw ExitCode(VMControl.run(VMControl.Request(action: "snapshot", socket: socket, out: out, leavePaused: leavePaused)))
    }
}
