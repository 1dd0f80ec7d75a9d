// The `tandem` executable: everything lives in TandemCLI; this file only takes the earliest
// timestamp the process can (the start of every "exec →" phase) and hands over.
import HostOS
import TandemCLI

Launch.processStart = Clock.monotonicNanoseconds()
Tandem.main()
