// `tandem`: the lean launcher (see TandemLaunch.Launcher). It takes the earliest timestamp the
// process can — the start of every "exec →" phase — and runs `vm run` itself or hands over to
// `tandem-cli`.
import HostOS
import TandemLaunch

Launcher.processStart = Clock.monotonicNanoseconds()
Launcher.main(CommandLine.arguments)
