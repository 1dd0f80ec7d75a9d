import Bench
@testable import TandemCLI
import Testing

/// The bench's lab rows when L1 stops mid-run: where a new L1 starts, and what is kept.
@Suite("the nested lab's server rows across L1s")
struct LabServerTrialsTests {
    static func boots(_ names: [String]) -> [ServerSample] {
        names.enumerated().map { index, name in ServerSample(backend: name, workload: "http", trial: index) }
    }

    @Test("an L1 that stopped inside a pair: the next starts at the pairs both rows have, and the extra boot is dropped")
    func resume() {
        let (tandem, qemu) = ServerSetup.labBackends
        let first = Self.boots([tandem, qemu, tandem, qemu, tandem])  // L1 stopped during qemu's third boot
        #expect(ServerSetup.labPairsDone(first) == 2)
        let second = first + Self.boots([tandem, qemu, tandem, qemu, tandem, qemu])  // three more pairs
        #expect(ServerSetup.labPairsDone(second) == 5)
        let kept = ServerSetup.labKept(second, trials: 5)
        #expect(kept.filter { $0.backend == tandem }.count == 5 && kept.filter { $0.backend == qemu }.count == 5)
        #expect(ServerSetup.labPairsDone([]) == 0)
    }
}
