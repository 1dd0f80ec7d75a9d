/// A failure of a runtime command, in one line naming the input (a config.json field, a flag, a
/// container id) or the failing step and its argument. Exit status 1, as runc's.
public struct OCIError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
