import HostOS
import MicroVM
#if canImport(Glibc)
import Glibc
#endif

/// The tiny bare guests that `make guests` builds from guest-images/tiny, and where to find them.
public enum TinyGuests {
    /// The sieve size `compute` gets without --arg: about a second of emulated guest time here.
    public static let defaultComputeSize: UInt64 = 10_000

    public struct Entry: Sendable {
        public let name: String
        public let mode: CPUMode
        public let summary: String
    }

    public static let catalog: [Entry] = [
        Entry(name: "hello", mode: .long, summary: "prints a greeting, signals ready, exits 0"),
        Entry(name: "hello16", mode: .real, summary: "the same in 16-bit real mode"),
        Entry(name: "compute", mode: .long, summary: "counts primes up to --arg (default 10000) with the shared sieve"),
        Entry(name: "exit", mode: .long, summary: "exits with status --arg"),
        Entry(name: "spin", mode: .long, summary: "signals ready, then loops for ever (for --timeout)"),
        Entry(name: "triplefault", mode: .long, summary: "executes an invalid instruction with no IDT: a triple fault"),
        Entry(name: "flood", mode: .long, summary: "writes to the console without end"),
        Entry(name: "wild", mode: .long, summary: "pokes random ports and unbacked MMIO, then exits 0"),
        Entry(name: "echo", mode: .long, summary: "echoes terminal input in upper case until q"),
        Entry(name: "ticker", mode: .long, summary: "--arg ticks (default 2000) of work, each signalling ready, then a checksum: the guest to pause, snapshot and restore"),
        Entry(name: "blk", mode: .long, summary: "drives the first --drive as virtio-blk: writes sector 1 (not with --arg 1: read-only), reads it and sector 0 back"),
    ]

    public static var names: String { catalog.map(\.name).joined(separator: ", ") }

    /// Directories searched for NAME.bin: $TANDEM_GUEST_DIR/tiny, then, upwards from the
    /// executable, guest-images/build/tiny (a source checkout) and share/tandem/tiny (an install).
    static func searchDirectories() -> [String] {
        var directories: [String] = []
        _ = firstSearchDirectory { directories.append($0); return false }
        return directories
    }

    /// The first of `searchDirectories()`, in order, for which `matches` holds; each is made only
    /// when the ones before it did not match.
    static func firstSearchDirectory(where matches: (String) -> Bool) -> String? {
        if let override = getenv("TANDEM_GUEST_DIR") {
            let directory = String(cString: override) + "/tiny"
            if matches(directory) { return directory }
        }
        guard let executable = Files.currentExecutable() else { return nil }
        var directory = Files.directory(of: executable)
        for _ in 0..<6 {
            for candidate in [directory + "/guest-images/build/tiny", directory + "/share/tandem/tiny"] where matches(candidate) {
                return candidate
            }
            if directory == "/" { break }
            directory = Files.directory(of: directory)
        }
        return nil
    }

    /// The first existing guest-images/build/NAME (or share/tandem/NAME) directory, searched as for
    /// the tiny guests.
    public static func buildDirectory(named name: String) -> String? {
        firstSearchDirectory { Files.kind(Files.directory(of: $0) + "/" + name) == .directory }
            .map { Files.directory(of: $0) + "/" + name }
    }

    /// Resolves `--tiny NAME|PATH` to an image path and the mode it was built for (nil for a path).
    static func resolve(_ argument: String) -> Result<(path: String, mode: CPUMode?), ResolveError> {
        if let entry = catalog.first(where: { $0.name == argument }) {
            // The list of directories is made only for the error: on a launch's critical path the
            // first hit ends the search.
            if let found = firstSearchDirectory(where: { Files.kind($0 + "/" + entry.name + ".bin") == .regular }) {
                return .success((found + "/" + entry.name + ".bin", entry.mode))
            }
            return .failure(.notBuilt(name: entry.name, searched: searchDirectories()))
        }
        if Files.kind(argument) != .missing { return .success((argument, nil)) }
        if argument.contains("/") || argument.hasSuffix(".bin") { return .failure(.missingPath(argument)) }
        return .failure(.unknownName(argument))
    }

    enum ResolveError: Error, CustomStringConvertible {
        case unknownName(String)
        case missingPath(String)
        case notBuilt(name: String, searched: [String])

        var description: String {
            switch self {
            case .unknownName(let name):
                "unknown tiny guest '\(name)': known ones are \(TinyGuests.names) (or give a path to a flat binary)"
            case .missingPath(let path):
                "guest image \(path) does not exist"
            case .notBuilt(let name, let searched):
                "tiny guest '\(name)' is not built: run `make guests` in the Tandem checkout, or set TANDEM_GUEST_DIR "
                    + "(looked in \(searched.first ?? "nowhere")\(searched.count > 1 ? " and \(searched.count - 1) more" : ""))"
            }
        }
    }
}
