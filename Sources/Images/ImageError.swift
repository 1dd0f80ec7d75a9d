import HostOS

/// An image failure in one line: the input (image, blob, tar entry) and what is wrong with it.
public struct ImageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
    package init(_ error: SystemError) { description = error.description }

    /// The same failure with its context in front ("image X: blob Y: " + ...).
    package func within(_ context: String) -> ImageError { ImageError(context + ": " + description) }
}
