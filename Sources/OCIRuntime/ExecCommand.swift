import CLinux
import Containers
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// `exec ID [COMMAND...]`: another process in a running container's namespaces and cgroups, with
/// the container's identity (config.json's process: user, capabilities, rlimits, seccomp) unless
/// flags or `--process FILE` (a process JSON object) say otherwise.
enum ExecCommand {
    static let flags = [
        Arguments.Flag("process", "p", value: true), Arguments.Flag("console-socket", value: true), Arguments.Flag("cwd", value: true),
        Arguments.Flag("env", "e", value: true, repeats: true), Arguments.Flag("tty", "t"), Arguments.Flag("user", "u", value: true),
        Arguments.Flag("additional-gids", "g", value: true, repeats: true), Arguments.Flag("detach", "d"), Arguments.Flag("pid-file", value: true),
        Arguments.Flag("no-new-privs"), Arguments.Flag("cap", "c", value: true, repeats: true), Arguments.Flag("preserve-fds", value: true),
        Arguments.Flag("process-label", value: true), Arguments.Flag("apparmor", value: true), Arguments.Flag("ignore-paused"),
    ]

    static func run(_ rest: ArraySlice<String>, _ options: GlobalOptions) throws(OCIError) -> Int32 {
        let arguments = try Arguments(rest, flags: flags, command: "exec")
        let id = try arguments.id("exec")
        let record = try options.store.load(id)
        guard record.currentStatus == .running else {
            throw OCIError("exec \(id): cannot exec in a container that is \(record.currentStatus.rawValue)" + (record.currentStatus == .paused ? " (resume it first)" : ""))
        }
        let config = try OCIConfig.load(bundle: record.bundle)
        var process = try resolveProcess(arguments, config: config)
        if process.terminal && arguments.value("console-socket") == nil {
            guard arguments.flag("detach") == false, isatty(0) == 1 else {
                throw OCIError("exec \(id): --tty needs --console-socket (or a terminal on stdin, in the foreground)")
            }
            process.terminal = false  // the foreground terminal is shared
        }
        var console: (master: Int32, slave: Int32, path: String)?
        defer { if let console { close(console.master); close(console.slave) } }
        if process.terminal, let socket = arguments.value("console-socket") {
            console = try Terminal.openPair(size: process.consoleSize)
            try Terminal.sendMaster(console!.master, to: Files.absolute(socket))
        }
        let pid = try Lifecycle.exec(record, config: config, process: process, consoleFD: console?.slave ?? -1,
                                     pidFile: arguments.value("pid-file").map(Files.absolute))
        if arguments.flag("detach") { return 0 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return WaitStatus.exitCode(status)
    }

    /// The process to run: --process FILE, or the container's with the flags applied.
    static func resolveProcess(_ arguments: Arguments, config: OCIConfig) throws(OCIError) -> OCIConfig.Process {
        if let file = arguments.value("process") {
            guard let text = Files.readText(file) else { throw OCIError("exec: --process \(file): cannot read it") }
            let json: JSON
            do { json = try JSON.parse(text) } catch { throw OCIError("exec: --process \(file): not valid JSON: \(error.description)") }
            do { return try OCIConfig.readProcess(Field(path: "process", value: json, notes: ConfigNotes()), notes: ConfigNotes()) } catch {
                let reason = error.description.hasPrefix("config.json: ") ? String(error.description.dropFirst(13)) : error.description
                throw OCIError("exec: --process \(file): \(reason)")
            }
        }
        guard var process = config.process else { throw OCIError("exec: the container's config.json has no process") }
        let command = Array(arguments.positionals.dropFirst())
        guard !command.isEmpty else { throw OCIError("exec: no command given (tandem-runtime exec ID COMMAND [ARG...], or --process FILE)") }
        process.args = command
        process.terminal = arguments.flag("tty")
        for entry in arguments.all("env") {
            guard entry.contains("=") else { throw OCIError("exec: --env \(entry): not KEY=value") }
            let key = entry.prefix { $0 != "=" }
            process.env.removeAll { $0.hasPrefix(key + "=") }
            process.env.append(entry)
        }
        if let cwd = arguments.value("cwd") {
            guard cwd.hasPrefix("/") else { throw OCIError("exec: --cwd \(cwd): must be an absolute path") }
            process.cwd = cwd
        }
        if let user = arguments.value("user") {
            let parts = user.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, let uid = UInt32(parts[0]), parts.count == 1 || UInt32(parts[1]) != nil else {
                throw OCIError("exec: --user \(user): use UID or UID:GID (numbers)")
            }
            process.user.uid = uid
            process.user.gid = parts.count == 2 ? UInt32(parts[1])! : process.user.gid
        }
        for gid in arguments.all("additional-gids") {
            guard let number = UInt32(gid) else { throw OCIError("exec: --additional-gids \(gid): not a number") }
            process.user.additionalGids.append(number)
        }
        if arguments.flag("no-new-privs") { process.noNewPrivileges = true }
        let notes = ConfigNotes()
        let added = try Capabilities.mask(arguments.all("cap"), field: "--cap", notes: notes)
        process.capabilities.bounding |= added
        process.capabilities.effective |= added
        process.capabilities.permitted |= added
        process.capabilities.inheritable |= added
        process.capabilities.ambient |= added
        if let count = arguments.value("preserve-fds"), count != "0" { throw OCIError("exec: --preserve-fds \(count): not supported by tandem-runtime") }
        return process
    }
}
