import ArgumentParser
import Bench
import FoundationEssentials
import HostOS
import Report
#if canImport(Glibc)
import Glibc
#endif

/// `tandem report`: the pages from a results.json (alone: nothing else is needed).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Turn a bench's results.json into HTML (inline SVG charts), Markdown, CSV and JSON; or compare two runs.")

    @Argument(help: ArgumentHelp("A bench directory or its results.json.", valueName: "dir|results.json"))
    var input: String?
    @Option(name: .long, help: ArgumentHelp("Where the pages go (default: next to results.json).", valueName: "dir"))
    var out: String?
    @Option(name: .long, help: ArgumentHelp("Comma-separated: html, md, csv, json.", valueName: "list"))
    var format = "html,md,csv,json"
    @Option(name: .long, help: "The backend ratios are taken against.")
    var baseline: String?
    @Option(name: .long, parsing: .upToNextOption, help: ArgumentHelp("Two results.json files: what changed from A to B, with a Mann-Whitney test.", valueName: "a b"))
    var compare: [String] = []

    func run() throws {
        if !compare.isEmpty {
            guard compare.count == 2 else { throw fail("--compare takes two results.json files") }
            StandardOutput.write(Comparison.markdown(try Self.load(compare[0]), try Self.load(compare[1])))
            return
        }
        guard let input else { throw fail("give a bench directory or its results.json (or --compare A B)") }
        let path = Files.kind(input) == .directory ? input + "/results.json" : input
        let results = try Self.load(path)
        let formats = format.split(separator: ",").map(String.init)
        for name in formats where !["html", "md", "csv", "json"].contains(name) { throw fail("--format: unknown format \(name) (html, md, csv, json)") }
        let model = ReportModel(results, baseline: baseline)
        if let baseline, !results.backends.contains(where: { $0.name == baseline }) { throw fail("--baseline \(baseline): no such backend in \(path)") }
        let directory = out ?? Files.directory(of: path)
        if Files.kind(directory) == .missing { try? Files.makeDirectories(directory) }
        try Self.write(model, to: directory, formats: formats)
        StandardOutput.write(formats.map { "\(directory)/\(Self.fileName[$0]!)" }.joined(separator: "\n") + "\n")
    }

    static let fileName = ["html": "index.html", "md": "report.md", "csv": "results.csv", "json": "summary.json"]

    static func load(_ path: String) throws -> BenchResults {
        guard Files.kind(path) == .regular else { throw fail("\(path): no such file (a bench writes results.json)") }
        do {
            let bytes = try Files.read(path)
            let results = try JSONDecoder().decode(BenchResults.self, from: Data(bytes))
            guard results.schema == "tandem.bench/1" else { throw fail("\(path): schema \(results.schema), expected tandem.bench/1") }
            return results
        } catch let error as ExitCode { throw error } catch {
            throw fail("\(path): not a Tandem results file (\(error))")
        }
    }

    static func write(_ model: ReportModel, to directory: String, formats: [String]) throws {
        for format in formats {
            let text: String
            switch format {
            case "html": text = model.html()
            case "md": text = model.markdown()
            case "csv": text = model.csv()
            default: text = model.summaryJSON()
            }
            do { try Files.write("\(directory)/\(fileName[format]!)", Array(text.utf8)) } catch { throw fail("cannot write the report: \(error)") }
        }
    }
}
