import Bench
import Report
import Testing

@Suite("Report statistics, against hand-computed values")
struct StatisticsTests {
    @Test("quantiles interpolate linearly between order statistics (type 7)")
    func quantiles() {
        let values = [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        #expect(Statistics.quantile(values, 0.5) == 5.5)
        #expect(abs(Statistics.quantile(values, 0.05) - 1.45) < 1e-12)   // 0.05 * 9 = 0.45 → 1 + 0.45
        #expect(abs(Statistics.quantile(values, 0.95) - 9.55) < 1e-12)
        #expect(Statistics.quantile([7], 0.3) == 7)
        #expect(Statistics.median([3, 1, 2]) == 2)
    }

    @Test("summary: n, median, spread; the bootstrap interval brackets the median and is reproducible")
    func summary() throws {
        let values = [10.0, 12, 11, 13, 50, 9, 11, 12, 10, 11]
        let summary = try #require(Statistics.summarize(values))
        #expect(summary.n == 10 && summary.median == 11 && summary.min == 9 && summary.max == 50)
        #expect(summary.ciLow <= summary.median && summary.median <= summary.ciHigh)
        #expect(summary.ciLow >= 10 && summary.ciHigh <= 12.5)
        #expect(Statistics.summarize(values) == summary)
        let big = try #require(Statistics.summarize([11_767_808, 12_390_400, 3_547_136]))
        #expect(big.median == 11_767_808)
    }

    @Test("ratio of medians with its interval")
    func ratio() throws {
        let r = try #require(Statistics.ratio([20, 22, 21], to: [10, 11, 10.5]))
        #expect(r.ratio == 2)
        #expect(r.low <= 2 && r.high >= 2)
    }

    @Test("Mann–Whitney, normal approximation: separated samples of 10 give scipy's asymptotic p (0.000183), identical ones p≈1")
    func mannWhitneyNormal() throws {
        let a = (1...10).map(Double.init), b = (11...20).map(Double.init)
        let test = try #require(Statistics.mannWhitney(a, b, exactLimit: 0))
        #expect(test.method == .normal)
        #expect(abs(test.p - 0.000183) < 0.00002)
        #expect(try #require(Statistics.mannWhitney(a, a, exactLimit: 0)).p > 0.9)
    }

    @Test("Mann–Whitney, exact for small samples: 10 vs 10 separated is 2/C(20,10) (scipy's exact), 3 vs 3 can never reach 0.05")
    func mannWhitneyExact() throws {
        let a = (1...10).map(Double.init), b = (11...20).map(Double.init)
        let test = try #require(Statistics.mannWhitney(a, b))
        #expect(test.method == .exact)
        #expect(abs(test.p - 2.0 / 184_756) < 1e-9)
        let small = try #require(Statistics.mannWhitney([1, 2, 3], [10, 11, 12]))
        #expect(small.method == .exact)
        #expect(abs(small.p - 0.1) < 1e-9, "the most extreme of C(6,3) = 20 splits, both tails: 2/20")
        #expect(Statistics.mannWhitney([], [1]) == nil)
    }

    @Test("Mann–Whitney exact with ties equals a brute-force count over every split of the pooled values")
    func mannWhitneyExactTies() throws {
        let samples: [([Double], [Double])] = [([1, 1, 2, 5], [2, 3, 3]), ([4, 4, 4], [4, 5, 6, 6]), ([1, 2, 2, 2, 3], [2, 2, 7])]
        for (a, b) in samples {
            let pooled = a + b
            let sorted = pooled.sorted()
            func rank(_ value: Double) -> Double {
                let below = sorted.filter { $0 < value }.count, equal = sorted.filter { $0 == value }.count
                return Double(below) + Double(equal + 1) / 2
            }
            let ranks = pooled.map(rank)
            let observed = ranks.prefix(a.count).reduce(0, +)
            let mean = Double(a.count) * Double(pooled.count + 1) / 2
            var extreme = 0, splits = 0
            for mask in 0..<(1 << pooled.count) where mask.nonzeroBitCount == a.count {
                let sum = ranks.indices.filter { mask & (1 << $0) != 0 }.reduce(0.0) { $0 + ranks[$1] }
                splits += 1
                if abs(sum - mean) >= abs(observed - mean) - 1e-9 { extreme += 1 }
            }
            let test = try #require(Statistics.mannWhitney(a, b))
            #expect(abs(test.p - Double(extreme) / Double(splits)) < 1e-12, "\(a) vs \(b)")
        }
    }

    @Test("formatting")
    func formatting() {
        #expect(Format.milliseconds(0.53) == "0.53 ms")
        #expect(Format.milliseconds(25.64) == "25.6 ms")
        #expect(Format.milliseconds(3301) == "3.30 s")
        #expect(Format.bytes(11_767_808) == "11.2 MiB")
        #expect(Format.bytes(260_403_200) == "248 MiB")
    }
}
