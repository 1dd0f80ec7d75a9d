import ArgumentParser
import TandemLaunch

/// `tandem run IMAGE`: a user's image from the store, in the backend asked for.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run an image from the store (tandem image import/pull) as a container.",
        discussion: """
        The image config is honoured as Docker and podman honour it: Entrypoint, then the command after -- \
        (else Cmd), Env (--env on top), WorkingDir and User (from the image's /etc/passwd and /etc/group). \
        The root is an overlay of the image's layers and a writable layer of the container's own. \
        Exit status: the program's (128+N when signal N ended it), or 125 when Tandem failed. \
        --as container is Tandem's own runtime; --as crun and --as runc run the same config.json \
        (made from the image) through crun or runc, on an overlay of the image's layers mounted in \
        a mount namespace of tandem's own; --as libvirt boots the image as a libvirt guest's root \
        disk (ext4, virtio-blk) with tandem-init as PID 1; --as microvm boots it in Tandem's own VMM \
        as the guest's initramfs (hardware KVM; on other hosts, `tandem lab nested --image`).
        """
    )

    @Argument(help: ArgumentHelp("NAME[:TAG], an image id or a prefix of one.", valueName: "image"))
    var image: String
    @Option(name: .customLong("as"), help: ArgumentHelp("The backend: container (Tandem's runtime), crun, runc, libvirt or microvm.", valueName: "backend"))
    var backend = "container"
    @Flag(name: .customLong("allow-emulated"), help: "--as microvm: boot even where /dev/kvm has no hardware virtualisation (a Linux guest then takes minutes).")
    var allowEmulated = false
    @OptionGroup var storeOption: StoreOption
    @OptionGroup var container: ContainerRunOptions
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command, after -- (replaces the image's Cmd; its Entrypoint stays).", valueName: "command"))
    var command: [String] = []

    func run() throws {
        var options = container.options
        options.imageReference = image
        options.store = storeOption.store
        options.command = command
        switch backend {
        case "container": break
        case "crun", "runc":
            let status: Int32
            do { status = try PeerRun.run(options, runtime: backend) } catch { throw fail(error.description) }
            if status != 0 { throw ExitCode(status) }
            return
        case "libvirt":
            let status: Int32
            do { status = try ImageVMRun.run(options) } catch { throw fail(error.description) }
            if status != 0 { throw ExitCode(status) }
            return
        case "microvm":
            let status: Int32
            do { status = try ImageMicroVMRun.run(options, allowEmulated: allowEmulated) } catch { throw fail(error.description) }
            if status != 0 { throw ExitCode(status) }
            return
        default:
            throw fail("run --as \(backend): must be container, crun, runc, microvm or libvirt")
        }
        let status = CtrRunner.run(options, processStart: nil)
        if status != 0 { throw ExitCode(status) }
    }
}
