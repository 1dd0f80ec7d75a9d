import Bench

/// The statistics a figure is reported with: n, median, p5/p95, min/max and a bootstrap
/// confidence interval of the median; ratios against a baseline with their own interval.
public struct Summary: Equatable, Sendable {
    public var n: Int
    public var median: Double
    public var p5: Double
    public var p95: Double
    public var min: Double
    public var max: Double
    /// 95% percentile-bootstrap interval of the median.
    public var ciLow: Double
    public var ciHigh: Double
}

public enum Statistics {
    /// Quantile `q` by linear interpolation between order statistics (Hyndman & Fan type 7, the
    /// default of R and NumPy).
    public static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        precondition(!sorted.isEmpty)
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = Swift.min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }

    public static func median(_ values: [Double]) -> Double { quantile(values.sorted(), 0.5) }

    /// Percentile bootstrap of `statistic` (resamples with replacement, a fixed seed: the same
    /// report from the same results).
    public static func bootstrap(_ values: [Double], resamples: Int = 2000, seed: UInt64 = 7,
                                 statistic: ([Double]) -> Double = median) -> (low: Double, high: Double) {
        guard values.count > 1 else { return (values.first ?? 0, values.first ?? 0) }
        var generator = SeededGenerator(seed: seed)
        var estimates: [Double] = []
        estimates.reserveCapacity(resamples)
        for _ in 0..<resamples {
            let sample = (0..<values.count).map { _ in values[Int(generator.next() % UInt64(values.count))] }
            estimates.append(statistic(sample))
        }
        estimates.sort()
        return (quantile(estimates, 0.025), quantile(estimates, 0.975))
    }

    public static func summarize(_ values: [Double]) -> Summary? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let interval = bootstrap(values)
        return Summary(n: values.count, median: quantile(sorted, 0.5), p5: quantile(sorted, 0.05), p95: quantile(sorted, 0.95),
                       min: sorted[0], max: sorted[sorted.count - 1], ciLow: interval.low, ciHigh: interval.high)
    }

    /// Ratio of medians `values / baseline` with a bootstrap interval (both sides resampled).
    public static func ratio(_ values: [Double], to baseline: [Double], resamples: Int = 2000, seed: UInt64 = 11)
        -> (ratio: Double, low: Double, high: Double)? {
        guard !values.isEmpty, !baseline.isEmpty, median(baseline) > 0 else { return nil }
        var generator = SeededGenerator(seed: seed)
        var ratios: [Double] = []
        for _ in 0..<resamples {
            let a = (0..<values.count).map { _ in values[Int(generator.next() % UInt64(values.count))] }
            let b = (0..<baseline.count).map { _ in baseline[Int(generator.next() % UInt64(baseline.count))] }
            let denominator = median(b)
            if denominator > 0 { ratios.append(median(a) / denominator) }
        }
        ratios.sort()
        return (median(values) / median(baseline), quantile(ratios, 0.025), quantile(ratios, 0.975))
    }

    /// Mann–Whitney U test, two-sided, normal approximation with tie correction: the p-value that
    /// two samples come from the same distribution (`tandem report --compare`).
    public static func mannWhitneyP(_ a: [Double], _ b: [Double]) -> Double? {
        guard a.count >= 2, b.count >= 2 else { return nil }
        let all = (a.map { ($0, 0) } + b.map { ($0, 1) }).sorted { $0.0 < $1.0 }
        var ranks = [Double](repeating: 0, count: all.count)
        var tieTerm = 0.0
        var index = 0
        while index < all.count {
            var end = index
            while end + 1 < all.count && all[end + 1].0 == all[index].0 { end += 1 }
            let rank = Double(index + end) / 2 + 1
            for k in index...end { ranks[k] = rank }
            let t = Double(end - index + 1)
            tieTerm += t * t * t - t
            index = end + 1
        }
        let n1 = Double(a.count), n2 = Double(b.count), n = n1 + n2
        let r1 = zip(all, ranks).filter { $0.0.1 == 0 }.reduce(0) { $0 + $1.1 }
        let u = r1 - n1 * (n1 + 1) / 2
        let mean = n1 * n2 / 2
        let variance = n1 * n2 / 12 * ((n + 1) - tieTerm / (n * (n - 1)))
        guard variance > 0 else { return 1 }
        let z = (abs(u - mean) - 0.5) / variance.squareRoot()
        return Swift.min(1, 2 * (1 - normalCDF(Swift.max(0, z))))
    }

    static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
}

#if canImport(Glibc)
import Glibc
#endif
