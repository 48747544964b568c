/// p50 / p99 / max of pause durations (nearest-rank percentiles).
public struct PauseStats: Sendable, Equatable, CustomStringConvertible {
    public var count: Int
    public var p50: Double
    public var p99: Double
    public var max: Double

    /// Statistics of `samples` (milliseconds); `nil` for none.
    public init?(_ samples: [Double]) {
        guard !samples.isEmpty else { return nil }
        let sorted = samples.sorted()
        func rank(_ p: Double) -> Double {
            let index = Int((p * Double(sorted.count)).rounded(.up)) - 1
            return sorted[Swift.max(0, Swift.min(sorted.count - 1, index))]
        }
        self.count = sorted.count
        self.p50 = rank(0.50)
        self.p99 = rank(0.99)
        self.max = sorted[sorted.count - 1]
    }

    public var description: String {
        func ms(_ value: Double) -> String {
            let tenths = (value * 10).rounded() / 10
            return "\(tenths) ms"
        }
        return "p50 \(ms(self.p50)), p99 \(ms(self.p99)), max \(ms(self.max)) over \(self.count) move\(self.count == 1 ? "" : "s")"
    }
}
