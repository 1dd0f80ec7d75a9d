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

    @Test("Mann–Whitney: identical samples p=1-ish, separated samples p small (scipy: 0.000183 for 10 vs 10)")
    func mannWhitney() throws {
        let a = (1...10).map(Double.init), b = (11...20).map(Double.init)
        let p = try #require(Statistics.mannWhitneyP(a, b))
        #expect(abs(p - 0.000183) < 0.00002)
        #expect(try #require(Statistics.mannWhitneyP(a, a)) > 0.9)
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
