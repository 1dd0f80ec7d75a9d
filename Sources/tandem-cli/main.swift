// `tandem-cli`: the full command tree (ArgumentParser). `tandem` hands every command line it does
// not run itself to this program; it can also be run directly.
import HostOS
import TandemCLI

Tandem.main()
