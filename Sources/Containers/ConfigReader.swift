import HostOS

/// One value of config.json being read, with its path ("process.user.uid") for errors.
/// Unknown object members are not errors — the runtime spec says runtimes MUST ignore unknown
/// properties — but each is recorded, so `--debug` and the log can name them.
package struct Field {
    package let path: String
    package let value: JSON
    package let notes: ConfigNotes

    package init(path: String, value: JSON, notes: ConfigNotes) {
        self.path = path
        self.value = value
        self.notes = notes
    }

    package func error(_ message: String) -> OCIError { OCIError("config.json: \(path): \(message)") }

    package var typeName: String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .int, .uint, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        case .verbatim: "JSON"
        }
    }

    /// The members of an object; `known` names every member this runtime reads.
    package func members(known: [String]) throws(OCIError) -> [String: Field] {
        guard case .object(let pairs) = value else { throw error("expected an object, got \(typeName)") }
        var result: [String: Field] = [:]
        for (key, item) in pairs {
            let child = Field(path: path.isEmpty ? key : "\(path).\(key)", value: item, notes: notes)
            if !known.contains(key) { notes.unknown.append(child.path); continue }
            if case .null = item { continue }
            result[key] = child
        }
        return result
    }

    /// A string. A NUL byte (\u0000) is refused: every string ends up in a system call as a C
    /// string, which would silently cut it there (runc refuses it too).
    package func string() throws(OCIError) -> String {
        guard case .string(let text) = value else { throw error("expected a string, got \(typeName)") }
        guard !text.utf8.contains(0) else { throw error("contains a NUL byte (\\u0000)") }
        return text
    }

    package func bool() throws(OCIError) -> Bool {
        guard case .bool(let flag) = value else { throw error("expected true or false, got \(typeName)") }
        return flag
    }

    package func int64() throws(OCIError) -> Int64 {
        switch value {
        case .int(let number): return number
        case .double(let number) where number == number.rounded() && abs(number) < 9.2e18: return Int64(number)
        default: throw error("expected an integer, got \(typeName)")
        }
    }

    package func uint64() throws(OCIError) -> UInt64 {
        switch value {
        case .uint(let number): return number
        case .int(let number) where number >= 0: return UInt64(number)
        default: throw error("expected a non-negative integer, got \(typeName)")
        }
    }

    package func int(in range: ClosedRange<Int64>) throws(OCIError) -> Int64 {
        let number = try int64()
        guard range.contains(number) else { throw error("\(number) is out of range \(range.lowerBound)...\(range.upperBound)") }
        return number
    }

    package func uint32() throws(OCIError) -> UInt32 { UInt32(try int(in: 0...Int64(UInt32.max))) }

    /// A user or group id: 0...2147483647, as runc takes (4294967295 is the kernel's "no id", and a
    /// negative id read as unsigned would be root's in disguise).
    package func id() throws(OCIError) -> UInt32 { UInt32(try int(in: 0...Int64(Int32.max))) }

    package func array() throws(OCIError) -> [Field] {
        guard case .array(let items) = value else { throw error("expected an array, got \(typeName)") }
        return items.enumerated().map { Field(path: "\(path)[\($0.offset)]", value: $0.element, notes: notes) }
    }

    package func strings() throws(OCIError) -> [String] {
        var result: [String] = []
        for item in try array() { result.append(try item.string()) }
        return result
    }

    /// An object of string values (annotations, sysctl, unified).
    package func stringMap() throws(OCIError) -> [(String, String)] {
        guard case .object(let pairs) = value else { throw error("expected an object, got \(typeName)") }
        var result: [(String, String)] = []
        for (key, item) in pairs {
            guard !key.utf8.contains(0) else { throw error("a key contains a NUL byte (\\u0000)") }
            result.append((key, try Field(path: "\(path).\(key)", value: item, notes: notes).string()))
        }
        return result
    }
}

/// What reading config.json noticed without failing.
package final class ConfigNotes: @unchecked Sendable {
    package var unknown: [String] = []
    package var ignored: [String] = []
    package var warnings: [String] = []
    package init() {}
}

extension Dictionary where Key == String, Value == Field {
    package func required(_ key: String, in parent: String) throws(OCIError) -> Field {
        guard let field = self[key] else { throw OCIError("config.json: \(parent.isEmpty ? key : parent + "." + key): missing (required)") }
        return field
    }
}
