import ArgumentParser
import TandemLaunch

/// `tandem ctr run`: the same options the lean launcher parses (a test keeps the two in step).
struct CtrRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command (default: tandem-init with --workload) as PID 1 of a new container.",
        discussion: """
        New PID, mount, UTS, IPC, network and cgroup namespaces (and a user namespace with --userns); \
        the root is an overlay of the read-only image (shared by every container) and a writable layer \
        of its own, entered with pivot_root; /proc, a minimal /dev and a read-only /sys; the OCI default \
        masked and read-only paths, capabilities and no_new_privs. Exit status: the container's PID 1's \
        (128+N when signal N ended it), or 125 when Tandem failed. State lives under --state-root.
        """
    )

    @Option(name: .long, help: ArgumentHelp("Image directory: the shared read-only lower layer (default: the rootfs `tandem image build` writes).", valueName: "dir"))
    var image: String?
    @Option(name: .long, help: ArgumentHelp("A root directory used as is instead of an image.", valueName: "dir"))
    var rootfs: String?
    @Option(name: .long, help: "The workload tandem-init runs (without a command).")
    var workload: String?
    @OptionGroup var container: ContainerRunOptions
    @Argument(parsing: .postTerminator, help: ArgumentHelp("The program and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    var options: CtrRunOptions {
        var options = container.options
        options.image = image
        options.rootfs = rootfs
        options.workload = workload
        options.command = command
        return options
    }

    func run() throws {
        let status = CtrRunner.run(options, processStart: nil)
        if status != 0 { throw ExitCode(status) }
    }
}

/// The container options `tandem ctr run` and `tandem run IMAGE` share.
struct ContainerRunOptions: ParsableArguments {
    @Option(name: .long, help: "A name for the container (ps, top, exec, stop accept it).")
    var name: String?
    @Option(name: [.customShort("m"), .long], help: ArgumentHelp("Memory limit (6m at least; k, m, g units).", valueName: "size"))
    var memory: String?
    @Option(name: .customLong("memory-swap"), help: ArgumentHelp("Memory plus swap (-1: unlimited swap).", valueName: "size"))
    var memorySwap: String?
    @Option(name: .long, help: ArgumentHelp("CPU bandwidth, in CPUs (0.5 = half of one).", valueName: "n"))
    var cpus: String?
    @Option(name: .long, help: ArgumentHelp("Most processes and threads at once.", valueName: "n"))
    var pids: String?
    @Option(name: .long, help: "Hostname inside (default: the id's first 12 digits).")
    var hostname: String?
    @Option(name: .long, help: ArgumentHelp("none: no interface up; loopback: lo up (default); bridge: lo, and eth0 on Tandem's bridge tandembr0 (172.29.0.0/24, the host 172.29.0.1; an address per container, released when it ends; outbound NAT; root only); host: the host's network (no network namespace).", valueName: "none|loopback|bridge|host"))
    var net: String?
    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("Publish a port with --net bridge: connections to HOST on any host address reach CONTAINER (nftables DNAT).", valueName: "host:container[/tcp|udp]"))
    var publish: [String] = []
    @Flag(name: .long, help: "A user namespace: root inside is host uid 100000.")
    var userns = false
    @Flag(name: .customLong("read-only"), help: "Mount the root read-only.")
    var readOnly = false
    @Option(name: [.customShort("v"), .long], help: ArgumentHelp("Bind mount HOST:CONTAINER[:ro].", valueName: "host:container[:ro]"))
    var volume: [String] = []
    @Option(name: [.customShort("e"), .long], help: ArgumentHelp("Environment variable.", valueName: "name=value"))
    var env: [String] = []
    @Flag(name: [.customShort("d"), .long], help: "Run in the background; print the container's id.")
    var detach = false
    @Option(name: .long, help: ArgumentHelp("Write a JSON report (schema tandem.ctr-run/1) here when it ends.", valueName: "file"))
    var report: String?
    @Option(name: .customLong("state-root"), help: ArgumentHelp("Where container state lives (default /run/tandem).", valueName: "dir"))
    var stateRoot: String?
    @Option(name: .customLong("monitor-id"), help: .hidden)
    var monitorID: String?

    /// These options as the engine's (the root and the command are the command's own).
    var options: CtrRunOptions {
        var options = CtrRunOptions()
        options.name = name
        options.memory = memory
        options.memorySwap = memorySwap
        options.cpus = cpus
        options.pids = pids
        options.hostname = hostname
        options.net = net
        options.userns = userns
        options.readOnly = readOnly
        options.volumes = volume
        options.publish = publish
        options.env = env
        options.detach = detach
        options.report = report
        options.stateRoot = stateRoot
        options.monitorID = monitorID
        return options
    }
}
