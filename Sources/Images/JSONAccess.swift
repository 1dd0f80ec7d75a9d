import HostOS

/// Typed reads of parsed JSON (manifests and configs are outside data: every field is checked
/// for its type where it is read).
extension JSON {
    package var string: String? { if case .string(let value) = self { value } else { nil } }
    package var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
    package var array: [JSON]? { if case .array(let value) = self { value } else { nil } }
    package var members: [(String, JSON)]? { if case .object(let value) = self { value } else { nil } }
    package var int64: Int64? {
        switch self {
        case .int(let value): value
        case .uint(let value): value <= UInt64(Int64.max) ? Int64(value) : nil
        default: nil
        }
    }
    /// An array of strings (nil when absent or null; an error is the caller's when it is something else).
    package var strings: [String]? {
        guard let items = array else { return nil }
        let texts = items.compactMap(\.string)
        return texts.count == items.count ? texts : nil
    }
}
