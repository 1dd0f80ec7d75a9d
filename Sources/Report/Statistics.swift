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

    /// Below this many trials a cell's figures are indicative only (the report says so beside any
    /// verdict or significance it draws from them).
    public static let smallSample = 10

    /// A two-sided Mann–Whitney U test: the p-value that two samples come from the same
    /// distribution, and which form of the test gave it (`tandem report --compare`).
    public struct MannWhitney: Equatable, Sendable {
        public enum Method: String, Sendable { case exact, normal }
        public var p: Double
        public var method: Method
    }

    /// Mann–Whitney U. Exact for small samples (n1 + n2 below `exactLimit`): the permutation
    /// distribution of the rank sum, counted over every way to split the pooled midranks, so ties
    /// are handled exactly too. Larger samples use the normal approximation with tie and
    /// continuity corrections. nil when a side has no value.
    public static func mannWhitney(_ a: [Double], _ b: [Double], exactLimit: Int = 40) -> MannWhitney? {
        guard !a.isEmpty, !b.isEmpty else { return nil }
        let all = (a.map { ($0, 0) } + b.map { ($0, 1) }).sorted { $0.0 < $1.0 }
        // Midranks, doubled so they are integers (a tie of two at ranks 3 and 4 gets 7).
        var doubledRanks = [Int](repeating: 0, count: all.count)
        var tieTerm = 0.0
        var index = 0
        while index < all.count {
            var end = index
            while end + 1 < all.count && all[end + 1].0 == all[index].0 { end += 1 }
            for k in index...end { doubledRanks[k] = index + end + 2 }
            let t = Double(end - index + 1)
            tieTerm += t * t * t - t
            index = end + 1
        }
        let n1 = a.count, n2 = b.count, n = n1 + n2
        let observed = zip(all, doubledRanks).filter { $0.0.1 == 0 }.reduce(0) { $0 + $1.1 }
        let mean = Double(n1 * (n + 1))  // doubled expected rank sum of a
        if n < exactLimit {
            // ways[k][s]: the number of k-subsets of the ranks seen so far whose doubled sum is s.
            let total = doubledRanks.reduce(0, +)
            var ways = [[Double]](repeating: [Double](repeating: 0, count: total + 1), count: n1 + 1)
            ways[0][0] = 1
            for rank in doubledRanks {
                for k in stride(from: min(n1, n), through: 1, by: -1) {
                    for sum in stride(from: total, through: rank, by: -1) where ways[k - 1][sum - rank] > 0 {
                        ways[k][sum] += ways[k - 1][sum - rank]
                    }
                }
            }
            let distance = abs(Double(observed) - mean)
            let splits = ways[n1].reduce(0, +)
            let extreme = ways[n1].enumerated().filter { abs(Double($0.offset) - mean) >= distance - 1e-9 }.reduce(0) { $0 + $1.element }
            return MannWhitney(p: Swift.min(1, extreme / splits), method: .exact)
        }
        let u = Double(observed) / 2 - Double(n1 * (n1 + 1)) / 2
        let uMean = Double(n1 * n2) / 2
        let nd = Double(n)
        let variance = Double(n1 * n2) / 12 * ((nd + 1) - tieTerm / (nd * (nd - 1)))
        guard variance > 0 else { return MannWhitney(p: 1, method: .normal) }
        let z = (abs(u - uMean) - 0.5) / variance.squareRoot()
        return MannWhitney(p: Swift.min(1, 2 * (1 - normalCDF(Swift.max(0, z)))), method: .normal)
    }

    static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }
}

#if canImport(Glibc)
import Glibc
#endif
