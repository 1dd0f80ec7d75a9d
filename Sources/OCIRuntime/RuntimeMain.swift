import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// Global options (before the command), as runc's.
struct GlobalOptions {
    var root = RuntimeInfo.defaultRoot
    var log: RuntimeLog
    var store: RecordStore { RecordStore(root: root) }
    /// The arguments to hand a monitor so it logs where we do.
    var forwarded: [String] = []
}

/// `tandem-runtime`: the OCI runtime command line (runc's), over Tandem's container runtime.
public enum RuntimeMain {
    static let usage = """
    tandem-runtime — an OCI runtime (runc's command line) built on Tandem's container runtime

    usage: tandem-runtime [global options] <command> [options] [arguments]

    commands:
      create [--bundle DIR] [--pid-file F] [--console-socket S] [--no-pivot] ID
                                     make a container; its process waits at its entry point
      start ID                       run the created container's process
      state ID                       the container's state (OCI state JSON)
      kill [--all] ID [SIGNAL]       send a signal (name or number; default TERM)
      delete [--force] ID            remove a stopped (or, with --force, any) container
      run [create options] [--detach] [--keep] ID
                                     create and start; without --detach wait and exit with its status
      list [--format table|json] [--quiet]
      ps [--format table|json] ID [ps options]
      exec [--process F | options] ID [COMMAND [ARG...]]
      pause ID / resume ID           freeze / thaw every process of the container
      spec [--bundle DIR]            write a default config.json
      features                       what this runtime supports (JSON)

    global options:
      --root DIR            state directory (default \(RuntimeInfo.defaultRoot); for another user
                            $XDG_RUNTIME_DIR/tandem-runtime)
      --rootless true|false|auto
                            accepted (as runc's): a user other than root runs rootless anyway
      --log FILE            also write messages to FILE
      --log-format text|json
      --debug               debug messages
      --systemd-cgroup      not supported: Tandem writes cgroupfs directly
      --version, --help
    """

    static let globalFlags = [
        Arguments.Flag("root", value: true), Arguments.Flag("log", value: true), Arguments.Flag("log-format", value: true),
        Arguments.Flag("debug"), Arguments.Flag("systemd-cgroup"), Arguments.Flag("rootless", value: true),
        Arguments.Flag("criu", value: true), Arguments.Flag("version", "v"), Arguments.Flag("help", "h"),
    ]

    public static func main() -> Never {
        let arguments = CommandLine.arguments
        var log = RuntimeLog(path: nil, format: .text, debug: false)
        do throws(OCIError) {
            let global = try Arguments(arguments.dropFirst(), flags: globalFlags, command: "tandem-runtime")
            guard let format = RuntimeLog.Format(rawValue: global.value("log-format") ?? "text") else {
                throw OCIError("--log-format \(global.value("log-format")!): use text or json")
            }
            log = RuntimeLog(path: global.value("log"), format: format, debug: global.flag("debug"))
            if global.flag("version") {
                StandardOutput.write("tandem-runtime version \(RuntimeInfo.version)\nspec: \(RuntimeInfo.ociVersion)\n")
                exit(0)
            }
            if global.flag("systemd-cgroup") {
                throw OCIError("--systemd-cgroup: not supported: tandem-runtime manages cgroups through cgroupfs itself (podman: --cgroup-manager=cgroupfs)")
            }
            if let rootless = global.value("rootless"), !["true", "false", "auto"].contains(rootless) {
                throw OCIError("--rootless \(rootless): use true, false or auto")
            }
            var options = GlobalOptions(log: log)
            if let root = global.value("root") {
                options.root = root
            } else if let root = RuntimeInfo.defaultRoot(uid: geteuid()) {
                options.root = root
            } else if global.positionals.first.map({ !["spec", "features"].contains($0) }) ?? false {
                throw OCIError("running as uid \(geteuid()) (rootless), the state goes under $XDG_RUNTIME_DIR, which is not set: set it, or pass --root DIR")
            }
            options.forwarded = ["--root", options.root] + (global.value("log").map { ["--log", $0, "--log-format", format.rawValue] } ?? [])
                + (global.flag("debug") ? ["--debug"] : [])
            guard let command = global.positionals.first, !global.flag("help") else {
                StandardOutput.write(usage + "\n")
                exit(global.flag("help") ? 0 : 1)
            }
            let rest = global.positionals.dropFirst()
            if rest.contains("--help") || rest.contains("-h") { StandardOutput.write(usage + "\n"); exit(0) }
            let status: Int32 = try {
                () throws(OCIError) -> Int32 in
                switch command {
                case "create": return try CreateCommand.run(rest, options)
                case "start": return try StartCommand.run(rest, options)
                case "state": return try StateCommand.run(rest, options)
                case "kill": return try KillCommand.run(rest, options)
                case "delete": return try DeleteCommand.run(rest, options)
                case "run": return try RunCommand.run(rest, options)
                case "list": return try ListCommand.run(rest, options)
                case "ps": return try PsCommand.run(rest, options)
                case "exec": return try ExecCommand.run(rest, options)
                case "pause", "resume": return try PauseCommand.run(rest, options, pause: command == "pause")
                case "spec": return try SpecCommand.run(rest, options)
                case "features": return try FeaturesCommand.run(rest, options)
                case MonitorCommand.name: return try MonitorCommand.run(rest, options)
                case "update", "events", "checkpoint", "restore":
                    throw OCIError("\(command): not supported by tandem-runtime")
                default: throw OCIError("unknown command \"\(command)\" (see tandem-runtime --help)")
                }
            }()
            exit(status)
        } catch {
            log.error(error.description)
            exit(1)
        }
    }
}
