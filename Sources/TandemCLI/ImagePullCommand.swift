import ArgumentParser
import HostOS
import ImageImport
import Images
#if canImport(Glibc)
import Glibc
#endif

/// `tandem image pull REF`: skopeo copies the image from its registry into an OCI layout, which is imported.
struct ImagePullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pull",
        abstract: "Pull an image from a registry (with skopeo) into the store.",
        discussion: "REF is a registry reference (debian:12, docker.io/library/alpine:3.20, quay.io/...). skopeo copies it into a temporary OCI layout, which is then imported like any other (every digest checked)."
    )
    @OptionGroup var storeOption: StoreOption
    @Argument(help: ArgumentHelp("The image reference.", valueName: "ref"))
    var reference: String

    func run() throws {
        guard let skopeo = Files.which("skopeo") else { throw fail("image pull \(reference): skopeo is not installed (apt-get install skopeo)") }
        let name: String
        do { name = try ImageStore.normalize(name: reference) } catch { throw fail("image pull: \(error.description)") }
        let store: ImageStore
        do { store = try storeOption.writableStore() } catch { throw fail("image pull \(reference): \(error.description)") }
        let scratch = "/tmp/tandem-pull-\(getpid())"
        defer { _ = Subprocess.runQuietly("/bin/rm", ["-rf", scratch]) }
        let source = name.contains("/") && name.split(separator: "/").first!.contains(".") ? name : "docker.io/" + (name.contains("/") ? name : "library/" + name)
        let copy: Subprocess.Result
        do {
            copy = try Subprocess.run(skopeo, ["copy", "--quiet", "docker://" + source, "oci:\(scratch):pulled"])
        } catch { throw fail("image pull \(reference): \(error)") }
        guard copy.status == 0 else {
            let said = String(copy.output.split(separator: "\n").last ?? "")
            let offline = said.contains("dial tcp") || said.contains("no such host") || said.contains("lookup ") || said.contains("network is unreachable")
            throw fail("image pull \(reference): \(offline ? "no registry is reachable from this host (skopeo: \(said))" : "skopeo copy docker://\(source): \(said)")")
        }
        do {
            let record = try store.importImage(from: scratch, reference: "pulled", tags: [name])
            StandardOutput.write("pulled \(name) (\(record.id.short))\n")
        } catch { throw fail("image pull \(reference): \(error.description)") }
    }
}
