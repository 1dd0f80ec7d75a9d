import Foundation
import HostOS
import Testing

/// The README and docs/ say only what the program does: every option `--help` lists is
/// documented, and the console examples run as written and print what they show.
enum Docs {
    static let files: [URL] = {
        let docs = Tandem.repository.appendingPathComponent("docs")
        let pages = ((try? FileManager.default.contentsOfDirectory(atPath: docs.path)) ?? []).filter { $0.hasSuffix(".md") }.sorted()
        return [Tandem.repository.appendingPathComponent("README.md")] + pages.map { docs.appendingPathComponent($0) }
    }()
    static let text: String = files.compactMap { try? String(contentsOf: $0, encoding: .utf8) }.joined(separator: "\n")

    /// `--name` as a whole option in `text` (not the head of a longer one: `--time` is not `--timeout`).
    static func mentions(_ option: String) -> Bool {
        text.range(of: "(?<![A-Za-z0-9-])" + NSRegularExpression.escapedPattern(for: option) + "(?![A-Za-z0-9-])", options: .regularExpression) != nil
    }

    /// One `$ command` of a ```console block and the output lines shown under it.
    struct Example: CustomStringConvertible, Sendable {
        var file: String
        var command: String
        var output: [String]
        var description: String { "\(file): $ \(command)" }
    }

    /// The console blocks, each a list of examples in order (a block's commands share a directory).
    static func blocks() -> [[Example]] {
        var blocks: [[Example]] = []
        for file in files {
            guard let page = try? String(contentsOf: file, encoding: .utf8) else { continue }
            var inBlock = false
            var examples: [Example] = []
            for line in page.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
                if line == "```console" { inBlock = true; examples = []; continue }
                if inBlock && line == "```" { inBlock = false; blocks.append(examples); continue }
                guard inBlock else { continue }
                if line.hasPrefix("$ ") {
                    examples.append(Example(file: file.lastPathComponent, command: String(line.dropFirst(2)), output: []))
                } else if !examples.isEmpty {
                    examples[examples.count - 1].output.append(line)
                }
            }
        }
        return blocks
    }

    /// Why an example is not run here, or nil to run it.
    static func skipReason(_ command: String) -> String? {
        if command.contains("tandem bench") { return "a bench takes minutes (BenchTests run one)" }
        if command.contains("--backend libvirt") { return "a TCG boot (LibvirtGuestTests run it)" }
        if command.contains("podman") { return "its --rootfs DIR is a placeholder (the podman suite runs it)" }
        if command.contains("open ") { return "opens a desktop browser" }
        return nil
    }

    /// The status an example's output annotates (`# exit status 124`, `# 126`), else 0.
    static func expectedStatus(_ output: [String]) -> Int32 {
        for line in output {
            if let match = line.range(of: #"#\s*(exit status\s*)?\d+\s*$"#, options: .regularExpression) {
                return Int32(line[match].filter(\.isNumber)) ?? 0
            }
        }
        return 0
    }

    /// Whether an output line shown in the docs is in what the command printed: text up to a "…"
    /// must appear; a "key   value" line (two or more spaces) needs only its key at a line's start;
    /// anything else must be a whole line. Trailing `# comments` are the docs' own.
    static func shown(_ expected: String, in actual: String) -> Bool {
        var line = expected
        if let comment = line.range(of: #"\s+#.*$"#, options: .regularExpression) { line.removeSubrange(comment) }
        line = line.trimmingCharacters(in: .whitespaces)
        let lines = actual.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        if line.isEmpty || line == "…" || line == "..." { return true }
        if let ellipsis = line.range(of: "…") ?? line.range(of: "...") {
            let head = String(line[..<ellipsis.lowerBound]).trimmingCharacters(in: .whitespaces)
            return head.isEmpty || lines.contains { $0.contains(head) }
        }
        if let gap = line.range(of: #"^\S+(?=\s{2,}\S)"#, options: .regularExpression) {
            let key = String(line[gap])
            return lines.contains { $0.hasPrefix(key + "  ") }
        }
        return lines.contains(line)
    }
}

@Suite("The docs match the program", .enabled(if: Tandem.guestsBuilt, "needs make guests"))
struct DocsTests {
    static let commands: [[String]] = [
        ["host"], ["image", "build"], ["vm", "run"], ["bench"], ["report"], ["lab", "nested"], ["ctr", "run"], ["ctr", "ps"],
        ["ctr", "top"], ["ctr", "exec"], ["ctr", "stop"], ["ctr", "kill"], ["ctr", "rm"], ["ctr", "pause"], ["ctr", "resume"],
        ["ctr", "logs"], ["ctr", "inspect"],
    ]

    @Test("every option `--help` lists is in the README or docs/", arguments: commands)
    func optionsDocumented(command: [String]) throws {
        let help = try Tandem.run(command + ["--help"])
        #expect(help.status == 0)
        let options = Set(help.stdout.matches(of: #/--[a-z][a-z0-9-]*/#).map { String($0.output) }).subtracting(["--help", "--version"])
        #expect(!options.isEmpty || command == ["ctr", "top"] || command == ["ctr", "pause"] || command == ["ctr", "resume"])
        for option in options.sorted() {
            #expect(Docs.mentions(option), "tandem \(command.joined(separator: " ")) \(option) is in --help but in no doc")
        }
    }

    @Test("every option of tandem-runtime's --help is in the docs")
    func runtimeOptionsDocumented() throws {
        let runtime = URL(fileURLWithPath: Tandem.path).deletingLastPathComponent().appendingPathComponent("tandem-runtime").path
        try #require(FileManager.default.isExecutableFile(atPath: runtime), "tandem-runtime is built next to tandem")
        let log = NSTemporaryDirectory() + "tandem-docs-help-\(getpid())"
        defer { unlink(log) }
        #expect(try Subprocess.run(runtime, ["--help"], outputFile: log) == 0)
        let help = Files.readText(log) ?? ""
        let options = Set(help.matches(of: #/--[a-z][a-z0-9-]*/#).map { String($0.output) }).subtracting(["--help", "--version"])
        #expect(options.count > 10)
        for option in options.sorted() {
            #expect(Docs.mentions(option), "tandem-runtime \(option) is in --help but in no doc")
        }
    }

    @Test("the console examples run as written and print what they show",
          .enabled(if: getuid() == 0 && Tandem.kvmUsable, "needs root (containers) and /dev/kvm (tiny guests)"))
    func consoleExamples() throws {
        let binaries = URL(fileURLWithPath: Tandem.path).deletingLastPathComponent().path
        var ran = 0
        for block in Docs.blocks() {
            let directory = NSTemporaryDirectory() + "tandem-docs-\(getpid())-\(ran)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            defer {
                // What the examples make, if one failed half-way: the container `web`, the OCI container c1.
                _ = Subprocess.runQuietly("/bin/sh", ["-c", "PATH=\(binaries):$PATH; tandem ctr rm -f web; tandem-runtime delete --force c1"])
                try? FileManager.default.removeItem(atPath: directory)
            }
            for example in block {
                if Docs.skipReason(example.command) != nil { continue }
                let log = directory + "/.output"
                let status = try Subprocess.run("/usr/bin/timeout", ["120", "/bin/sh", "-c", "cd '\(directory)' && PATH='\(binaries)':$PATH && \(example.command)"],
                                                outputFile: log)
                let output = Files.readText(log) ?? ""
                ran += 1
                #expect(status == Docs.expectedStatus(example.output), "\(example) exited \(status): \(output.suffix(600))")
                for line in example.output {
                    #expect(Docs.shown(line, in: output), "\(example) did not print \"\(line)\"; it printed: \(output.suffix(800))")
                }
            }
        }
        #expect(ran >= 15, "the docs' examples were found and run")
    }

    @Test("the example checker itself: a line that is not printed, or a wrong status, is caught")
    func checkerCatches() {
        #expect(Docs.shown("Hello from a tiny Tandem microVM!", in: "Hello from a tiny Tandem microVM!\n"))
        #expect(!Docs.shown("Hello from a tiny Tandem microVM!", in: "Hello from a small Tandem microVM!\n"))
        #expect(Docs.shown("TANDEM-PROBE pids=2 max_pid=2 hostname=…", in: "TANDEM-READY\nTANDEM-PROBE pids=2 max_pid=2 hostname=abc kernel=x\n"))
        #expect(!Docs.shown("TANDEM-PROBE pids=2 max_pid=2 hostname=…", in: "TANDEM-PROBE pids=3 max_pid=3 hostname=abc\n"))
        #expect(Docs.shown("cpu                 AMD EPYC (2 CPUs)", in: "cpu                 Intel Xeon\n"))
        #expect(!Docs.shown("cpu                 AMD EPYC (2 CPUs)", in: "cpus 2\n"))
        #expect(Docs.expectedStatus(["tandem: guest stopped: it ran past --timeout 0.5 s          # exit status 124"]) == 124)
        #expect(Docs.expectedStatus(["tandem: guest crashed: … RIP 0x10000   # 126"]) == 126)
        #expect(Docs.expectedStatus(["3"]) == 0)
        #expect(Docs.mentions("--json") && !Docs.mentions("--no-such-option-anywhere"))
    }
}
