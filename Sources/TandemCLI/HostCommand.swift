import ArgumentParser
import HostFacts
import HostOS

/// `tandem host`: what this host can run, and how fast it can be expected to.
struct HostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "host",
        abstract: "Show what this host can do: CPU, kernel, KVM and its virtualisation mode, cgroups, backends installed."
    )

    @Flag(name: .long, help: "Print JSON (schema tandem.host/1) instead of text.")
    var json = false

    @Option(name: .long, help: "The KVM device to probe.")
    var kvmDevice = "/dev/kvm"

    func run() throws {
        let facts = HostFacts.probe(kvmPath: kvmDevice)
        StandardOutput.write(json ? facts.json.serialized(indent: 2) + "\n" : facts.text)
    }
}
