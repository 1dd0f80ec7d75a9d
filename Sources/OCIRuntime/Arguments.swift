import Containers
/// runc's command line, read without ArgumentParser (the launch path stays small): flags as
/// `--name value`, `--name=value`, `-n value`, booleans alone; flags end at the first positional
/// argument or `--` (as urfave/cli, which runc uses, does).
struct Arguments {
    struct Flag {
        let names: [String]
        let takesValue: Bool
        let repeats: Bool
        init(_ names: String..., value: Bool = false, repeats: Bool = false) {
            self.names = names
            takesValue = value
            self.repeats = repeats
        }
    }

    private(set) var values: [String: [String]] = [:]
    private(set) var positionals: [String] = []

    /// `command` names the subcommand in errors.
    init(_ arguments: ArraySlice<String>, flags: [Flag], command: String) throws(OCIError) {
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            if argument == "--" { index += 1; break }
            guard argument.hasPrefix("-"), argument.count > 1 else { break }
            let (name, inline): (String, String?) = {
                let trimmed = argument.drop { $0 == "-" }
                if let equals = trimmed.firstIndex(of: "=") { return (String(trimmed[..<equals]), String(trimmed[trimmed.index(after: equals)...])) }
                return (String(trimmed), nil)
            }()
            guard let flag = flags.first(where: { $0.names.contains(name) }) else {
                throw OCIError("\(command): unknown flag \(argument) (see tandem-runtime \(command) --help)")
            }
            let key = flag.names[0]
            if flag.takesValue {
                var value = inline
                if value == nil {
                    index += 1
                    guard index < arguments.endIndex else { throw OCIError("\(command): \(argument) needs a value") }
                    value = arguments[index]
                }
                if flag.repeats { values[key, default: []].append(value!) } else { values[key] = [value!] }
            } else {
                if let inline, !["true", "false"].contains(inline) { throw OCIError("\(command): \(argument): a switch takes no value") }
                values[key] = [inline ?? "true"]
            }
            index += 1
        }
        positionals = Array(arguments[index...])
    }

    func value(_ name: String) -> String? { values[name]?.last }
    func all(_ name: String) -> [String] { values[name] ?? [] }
    func flag(_ name: String) -> Bool { values[name]?.last == "true" }

    /// The container id: the first positional argument.
    func id(_ command: String) throws(OCIError) -> String {
        guard let id = positionals.first else { throw OCIError("\(command): missing the container id (usage: tandem-runtime \(command) <container-id>)") }
        try RecordStore.validate(id: id)
        return id
    }

    func expectingNoMore(than count: Int, _ command: String) throws(OCIError) {
        guard positionals.count <= count else { throw OCIError("\(command): unexpected argument \"\(positionals[count])\"") }
    }
}
