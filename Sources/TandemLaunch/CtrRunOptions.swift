/// `tandem ctr run`'s options as typed by the user (values stay text; `CtrRunner` validates them,
/// so both parsers share every message).
public struct CtrRunOptions: Equatable, Sendable {
    public var image: String?
    public var rootfs: String?
    public var name: String?
    public var memory: String?
    public var memorySwap: String?
    public var cpus: String?
    public var pids: String?
    public var hostname: String?
    public var net: String?
    public var userns = false
    public var readOnly = false
    public var volumes: [String] = []
    /// `-p HOST:CONTAINER[/tcp|udp]`, repeatable.
    public var publish: [String] = []
    public var env: [String] = []
    public var workload: String?
    public var detach = false
    /// Write a JSON report (schema tandem.ctr-run/1) to this file when the container ends.
    public var report: String?
    /// The state directory (default /run/tandem).
    public var stateRoot: String?
    /// The program and its arguments (after `--`); default: /init (tandem-init) with the workload.
    public var command: [String] = []
    /// Internal: this process is the monitor of a detached container with this id.
    public var monitorID: String?
    /// `tandem run IMAGE`: an image in the store (NAME[:TAG] or id), and the store.
    public var imageReference: String?
    public var store: String?

    public init() {}
}

/// The launch path's parser for `tandem ctr run` (see `FastVMRunParser`): well-formed lines only;
/// anything else returns nil and goes to tandem-cli, which owns every message.
public enum FastCtrRunParser {
    public static func parse(_ arguments: ArraySlice<String>) -> CtrRunOptions? {
        var options = CtrRunOptions()
        var index = arguments.startIndex
        while index < arguments.endIndex {
            var argument = arguments[index]
            if argument == "--" {
                options.command = Array(arguments[arguments.index(after: index)...])
                return options.command.isEmpty ? nil : options
            }
            var inline: String?
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                inline = String(argument[argument.index(after: equals)...])
                argument = String(argument[..<equals])
            }
            func take() -> String? {
                if let inline { return inline }
                let next = arguments.index(after: index)
                guard next < arguments.endIndex, !arguments[next].hasPrefix("-") else { return nil }
                index = next
                return arguments[next]
            }
            switch argument {
            case "--userns", "--read-only", "--detach", "-d":
                guard inline == nil else { return nil }
                switch argument {
                case "--userns": options.userns = true
                case "--read-only": options.readOnly = true
                default: options.detach = true
                }
            case "--volume", "-v", "--env", "-e", "--publish", "-p":
                guard let text = take() else { return nil }
                switch argument {
                case "--volume", "-v": options.volumes.append(text)
                case "--publish", "-p": options.publish.append(text)
                default: options.env.append(text)
                }
            default:
                guard let keyPath = singleValued[argument], let text = take() else { return nil }
                options[keyPath: keyPath] = text
            }
            index = arguments.index(after: index)
        }
        return options
    }

    /// Options that take one value (a repeated one keeps the last, as ArgumentParser does).
    nonisolated(unsafe) static let singleValued: [String: WritableKeyPath<CtrRunOptions, String?>] = [
        "--image": \.image, "--rootfs": \.rootfs, "--name": \.name, "--memory": \.memory, "-m": \.memory,
        "--memory-swap": \.memorySwap, "--cpus": \.cpus, "--pids": \.pids, "--hostname": \.hostname,
        "--net": \.net, "--workload": \.workload, "--report": \.report, "--state-root": \.stateRoot,
        "--monitor-id": \.monitorID, "--store": \.store,
    ]
}
