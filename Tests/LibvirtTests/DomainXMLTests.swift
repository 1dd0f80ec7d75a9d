import Foundation
import Libvirt
import Testing

@Suite("libvirt domain XML")
struct DomainXMLTests {
    static func definition(machine: DomainDefinition.Machine = .microvm, accelerator: DomainDefinition.Accelerator = .qemu,
                           disk: String? = nil, bridge: String? = nil) -> DomainDefinition {
        var definition = DomainDefinition(name: "tandem-golden", accelerator: accelerator, machine: machine, memoryMiB: 256, vcpus: 2,
                                          kernel: "/boot/vmlinuz-test", initrd: "/images/initramfs.cpio",
                                          commandLine: "console=ttyS0 tandem.workload=hello quote=\"a'b\" <&>", consoleFile: "/tmp/t/console.log",
                                          disk: disk, owner: .init(pid: 42, startTime: 4242))
        definition.network = bridge.map { .init(bridge: $0, mac: "52:54:00:ac:1d:07") }
        return definition
    }

    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    @Test("each shape serializes exactly as its golden file", arguments: [
        ("microvm-tcg", definition()),
        ("q35-kvm", definition(machine: .q35, accelerator: .kvm)),
        ("pc-disk", definition(machine: .pc, disk: "/images/root.ext4")),
        ("microvm-bridge", definition(bridge: "tandembr0")),
    ])
    func golden(name: String, definition: DomainDefinition) throws {
        let expected = try String(contentsOf: Self.golden.appendingPathComponent(name + ".xml"), encoding: .utf8)
        #expect(definition.xml == expected)
    }

    @Test("text and attributes are escaped")
    func escaping() {
        #expect(escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&apos;")
        #expect(Self.definition().xml.contains("<cmdline>console=ttyS0 tandem.workload=hello quote=&quot;a&apos;b&quot; &lt;&amp;&gt;</cmdline>"))
    }

    @Test("libvirt's test driver accepts every shape (schema validation on define)")
    func libvirtValidates() throws {
        let connection = try LibvirtConnection(uri: "test:///default")
        for definition in [Self.definition(), Self.definition(machine: .q35, accelerator: .kvm), Self.definition(machine: .pc, disk: "/images/root.ext4"),
                           Self.definition(bridge: "tandembr0"), Self.definition(machine: .q35, bridge: "tandembr0")] {
            try connection.validate(definition.xml)
        }
        var broken = Self.definition()
        broken.memoryMiB = -1
        #expect(throws: LibvirtError.self) { try connection.validate(broken.xml) }
    }

    @Test("a connection to a daemon that is not there says how to start one")
    func noDaemon() {
        do {
            _ = try LibvirtConnection(uri: "qemu:///system?socket=/nonexistent/libvirt-sock")
            Issue.record("connected to a socket that does not exist")
        } catch {
            #expect(error.description.hasPrefix("cannot connect to libvirt at qemu:///system?socket=/nonexistent/libvirt-sock: "))
            #expect(error.description.contains("is the libvirt daemon running?"))
        }
    }
}
