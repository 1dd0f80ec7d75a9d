/// Numbers as the bench's progress and the report print them.
public enum Format {
    public static func milliseconds(_ value: Double) -> String {
        if value >= 1000 { return fixed(value / 1000, 2) + " s" }
        if value >= 100 { return fixed(value, 0) + " ms" }
        if value >= 10 { return fixed(value, 1) + " ms" }
        return fixed(value, 2) + " ms"
    }

    public static func bytes(_ value: Double) -> String {
        let kib = 1024.0, mib = kib * 1024, gib = mib * 1024
        if value >= gib { return fixed(value / gib, 2) + " GiB" }
        if value >= mib { return fixed(value / mib, value >= 100 * mib ? 0 : 1) + " MiB" }
        if value >= kib { return fixed(value / kib, 0) + " KiB" }
        return fixed(value, 0) + " B"
    }

    /// Bytes that may be negative (a noisy difference).
    public static func signedBytes(_ value: Double) -> String { value < 0 ? "−" + bytes(-value) : bytes(value) }

    public static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "—" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        var text = String(rounded)
        if digits == 0 { return String(Int(rounded)) }
        if let dot = text.firstIndex(of: ".") {
            let decimals = text.distance(from: dot, to: text.endIndex) - 1
            if decimals < digits { text += String(repeating: "0", count: digits - decimals) }
            if decimals > digits { text = String(text.prefix(text.distance(from: text.startIndex, to: dot) + 1 + digits)) }
        }
        return text
    }

    public static func ratio(_ value: (ratio: Double, low: Double, high: Double)?) -> String {
        guard let value else { return "—" }
        return "\(fixed(value.ratio, 2))× [\(fixed(value.low, 2))–\(fixed(value.high, 2))]"
    }
}
