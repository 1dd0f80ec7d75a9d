import ArgumentParser
import HostOS
import MicroVM

/// `tandem vm snapshot SOCKET --out DIR`: the running microVM's RAM and state into DIR.
struct VMSnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Snapshot a microVM through its control socket: DIR/memory (its RAM, sparse) and DIR/state (vCPUs, clock, devices).",
        discussion: """
        A running VM is paused for the snapshot and resumed after it (--leave-paused keeps it paused); \
        a paused one stays paused. `tandem vm restore DIR` brings the guest back where it was, as many \
        times as wanted (the memory file is never written through). Tiny guests without virtio devices \
        only, today.
        """)
    @OptionGroup var control: ControlSocketArgument

    @Option(name: .long, help: ArgumentHelp("The snapshot directory (made if missing; its files are replaced).", valueName: "dir"))
    var out: String

    @Flag(name: .long, help: "Leave the VM paused after the snapshot.")
    var leavePaused = false

    func run() throws {
        let wasRunning: Bool
        if case .string(let state)? = try control.send(.object([("action", .string("describe"))]))["state"] {
            wasRunning = state == "running"
        } else {
            wasRunning = false
        }
        if wasRunning { _ = try control.send(.object([("action", .string("pause"))])) }
        let answer: JSON
        do {
            answer = try control.send(.object([("action", .string("snapshot")), ("dir", .string(Files.absolute(out)))]))
        } catch {
            if wasRunning { _ = try? control.send(.object([("action", .string("resume"))])) }
            throw error
        }
        if wasRunning, !leavePaused { _ = try control.send(.object([("action", .string("resume"))])) }
        print(answer.serialized(indent: 2))
    }
}
