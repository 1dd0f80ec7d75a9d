import FoundationEssentials
import HostOS
#if canImport(Glibc)
import Glibc
#endif

/// The server workloads: the guest image's http server (loaded with wrk) and Debian's redis-server
/// (loaded with redis-benchmark's GET test).
public enum ServerWorkload: String, CaseIterable, Codable, Sendable {
    case http, redis
    /// Its program in the guest image (redis: the workload script beside redis-server, HostPrograms.redisWorkload).
    public var program: String { "/bin/" + rawValue }
    /// The port it listens on inside a sandbox with a network of its own.
    public var port: UInt16 { self == .http ? 80 : 6379 }
    /// The load generator.
    public var tool: String { self == .http ? "wrk" : "redis-benchmark" }
}

/// One trial of a server workload in one backend: how long from spawning its launcher until a
/// client's first request was answered (cold start), then what `wrk` measured at a fixed
/// concurrency for a fixed time.
public struct ServerSample: Codable, Sendable {
    public var backend: String
    public var workload: String
    public var trial: Int
    /// Spawn of the launcher → the first 200 a polling client got, ms; nil: never answered.
    public var coldStartMs: Double?
    public var requestsPerSecond: Double?
    public var latencyP50Us: Double?
    public var latencyP99Us: Double?
    public var latencyP999Us: Double?
    /// Connect, read, write and timeout errors and non-2xx answers wrk counted.
    public var errors: Int?
    /// What the server said it answered (http's `http requests=N` line at SIGTERM).
    public var served: Int?
    /// The launcher's exit status after SIGTERM.
    public var status: Int?
    public var note: String?
    public init(backend: String, workload: String, trial: Int) {
        self.backend = backend
        self.workload = workload
        self.trial = trial
    }
}

/// How the server benchmark was driven: the same for every backend. wrk runs for `seconds`;
/// redis-benchmark, which has no duration, sends `redisRequests` GETs.
public struct ServerSettings: Codable, Sendable {
    public var tool: String
    public var redisRequests: Int?
    public var connections: Int
    public var threads: Int
    public var seconds: Int
    public var bodyBytes: Int
    public init(tool: String, connections: Int, threads: Int, seconds: Int, bodyBytes: Int) {
        self.tool = tool
        self.connections = connections
        self.threads = threads
        self.seconds = seconds
        self.bodyBytes = bodyBytes
        redisRequests = 50_000 * seconds
    }
}

/// A way to run the http workload and where a client on the host reaches it.
public struct ServerBackend: Sendable {
    public enum Target: Sendable {
        /// A fixed address and port (the host's network, a published port).
        case fixed(String, UInt16)
        /// The first non-loopback address the server announces (`NAME: accepting on port P at A…`),
        /// on this port: a container on the bridge, a VM.
        case announced(UInt16)
    }
    public var name: String
    public var workload: ServerWorkload
    public var description: String
    public var argv: [String]
    public var target: Target
    public init(name: String, workload: ServerWorkload, description: String, argv: [String], target: Target) {
        self.name = name
        self.workload = workload
        self.description = description
        self.argv = argv
        self.target = target
    }
}

public enum ServerBench {
    /// wrk's summary as one line (its Lua `done` hook; percentiles in µs). The nested lab's server
    /// mode gives wrk the same script in L1.
    public static let wrkScript = """
    done = function(summary, latency, requests)
      local e = summary.errors
      io.write(string.format("WRK-RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d errors=%d\\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
        e.connect + e.read + e.write + e.status + e.timeout))
    end
    """

    /// Every backend `trials` times, interleaved (each round in a new order), `progress` after
    /// each. `tools`: the load generators' paths by name. Ctrl-C or SIGTERM ends it after the
    /// trial under way (whose launcher is stopped as usual): what was measured is returned, with
    /// the signal.
    public static func run(_ backends: [ServerBackend], settings: ServerSettings, trials: Int, tools: [String: String], workDirectory: String,
                           progress: (String) -> Void) -> (samples: [ServerSample], interruptedBy: Int32?) {
        let script = workDirectory + "/wrk-report.lua"
        try? Files.write(script, Array(wrkScript.utf8))
        var blocked = BlockedSignals([SIGINT, SIGTERM])
        defer { blocked.restore() }
        let interruption = Interruption(signals: try? SignalFD([SIGINT, SIGTERM]))
        var samples: [ServerSample] = []
        var generator = SeededGenerator(seed: 20_261_130)
        var order = backends
        for round in 0..<trials {
            order.shuffle(using: &generator)
            for backend in order {
                if interruption.happened { return (samples, interruption.signal) }
                let sample = trial(backend, round: round, settings: settings, tool: tools[backend.workload.tool] ?? backend.workload.tool,
                                   script: script, interruption: interruption)
                if interruption.happened { return (samples, interruption.signal) }  // (a cut-short trial is not kept)
                samples.append(sample)
                let rps = sample.requestsPerSecond.map { String(Int($0)) } ?? "—"
                let cold = sample.coldStartMs.map(Format.milliseconds) ?? "—"
                progress("server \(backend.workload.rawValue) \(backend.name) trial \(round + 1)/\(trials): cold start \(cold), \(rps) req/s\(sample.note.map { " (\($0))" } ?? "")")
            }
        }
        return (samples, nil)
    }

    /// Ctrl-C or SIGTERM reached the bench (read from a signalfd while they are blocked).
    final class Interruption {
        let signals: SignalFD?
        private(set) var signal: Int32?
        init(signals: SignalFD?) { self.signals = signals }
        var happened: Bool {
            if signal == nil, let next = signals?.next() { signal = next }
            return signal != nil
        }
    }

    static func trial(_ backend: ServerBackend, round: Int, settings: ServerSettings, tool: String, script: String,
                      interruption: Interruption) -> ServerSample {
        var sample = ServerSample(backend: backend.name, workload: backend.workload.rawValue, trial: round)
        let start = Clock.monotonicNanoseconds()
        guard let (pid, reader) = try? Subprocess.spawnPiped(backend.argv[0], Array(backend.argv.dropFirst()), mergeStandardError: true,
                                                             defaultSignals: true) else {
            sample.note = "could not start \(backend.argv[0])"
            return sample
        }
        _ = fcntl(reader.rawValue, F_SETFL, O_NONBLOCK)
        var output = LineCollector(reader: reader)
        measure(&sample, backend, start: start, output: &output, settings: settings, tool: tool, script: script, interruption: interruption)
        sample.status = stop(pid, output: &output)
        if let line = output.lines.last(where: { $0.hasPrefix("http requests=") }),
           let count = line.split(separator: " ").dropFirst().first?.split(separator: "=").last.flatMap({ Int($0) }) {
            sample.served = count
        }
        return sample
    }

    /// Polls the running server until it answers (the cold start), then loads it with wrk.
    static func measure(_ sample: inout ServerSample, _ backend: ServerBackend, start: UInt64, output: inout LineCollector,
                        settings: ServerSettings, tool: String, script: String, interruption: Interruption) {
        let deadline = start + Clock.nanoseconds(seconds: 60)
        // Where to knock.
        var host = "", port: UInt16 = 0
        switch backend.target {
        case .fixed(let address, let fixedPort): (host, port) = (address, fixedPort)
        case .announced(let announcedPort):
            port = announcedPort
            while host.isEmpty, Clock.monotonicNanoseconds() < deadline, !interruption.happened {
                output.poll(milliseconds: 5)
                if let line = output.lines.first(where: { $0.contains(": accepting on port ") }) {
                    let addresses = line.split(separator: " ").drop(while: { $0 != "at" }).dropFirst()
                    host = addresses.map(String.init).first { !$0.hasPrefix("127.") } ?? ""
                    if host.isEmpty { break }
                }
                if output.ended { break }
            }
            guard !host.isEmpty else {
                sample.note = "the server announced no address: \(output.lines.suffix(3).joined(separator: " | "))"
                return
            }
        }
        // Cold start: a client polls until it is answered.
        while Clock.monotonicNanoseconds() < deadline, !interruption.happened {
            output.poll(milliseconds: 0)
            if answered(backend.workload, host, port) {
                sample.coldStartMs = Double(Clock.monotonicNanoseconds() - start) / 1e6
                break
            }
            if output.ended { break }
            usleep(1000)
        }
        guard sample.coldStartMs != nil else {
            sample.note = "never answered on \(host):\(port): \(output.lines.suffix(3).joined(separator: " | "))"
            return
        }
        if backend.workload == .redis {
            loadRedis(&sample, host, port, settings: settings, tool: tool)
            return
        }
        // Load.
        let arguments = ["-t", String(settings.threads), "-c", String(settings.connections), "-d", "\(settings.seconds)s",
                         "--timeout", "5s", "-s", script, "http://\(host):\(port)/"]
        guard let result = try? Subprocess.run(tool, arguments), result.status == 0,
              let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("WRK-RESULT ") }) else {
            sample.note = "wrk failed"
            return
        }
        let wrk = WRKResult(String(line))
        sample.requestsPerSecond = wrk.requestsPerSecond
        sample.latencyP50Us = wrk.p50Us
        sample.latencyP99Us = wrk.p99Us
        sample.latencyP999Us = wrk.p999Us
        sample.errors = wrk.errors
    }

    /// redis-benchmark's GET test (`--csv`: requests/s and latency percentiles in ms; no p99.9).
    static func loadRedis(_ sample: inout ServerSample, _ host: String, _ port: UInt16, settings: ServerSettings, tool: String) {
        let arguments = ["-h", host, "-p", String(port), "-c", String(settings.connections), "-n", String(settings.redisRequests ?? 100_000),
                         "-t", "get", "--csv"]
        guard let result = try? Subprocess.run(tool, arguments, mergeStandardError: false), result.status == 0,
              let line = result.output.split(separator: "\n").first(where: { $0.hasPrefix("\"GET\"") }) else {
            sample.note = "redis-benchmark failed"
            return
        }
        guard let result = RedisBenchmarkResult(String(line)) else {
            sample.note = "redis-benchmark printed \(line)"
            return
        }
        sample.requestsPerSecond = result.requestsPerSecond
        sample.latencyP50Us = result.p50Us
        sample.latencyP99Us = result.p99Us
        sample.errors = 0
    }

    /// One request over a fresh connection (http: `GET /` → 200; redis: `PING` → `+PONG`):
    /// whether it was answered (connect and answer within 200 ms each).
    static func answered(_ workload: ServerWorkload, _ host: String, _ port: UInt16) -> Bool {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard sock >= 0 else { return false }
        defer { close(sock) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if connected != 0 {
            guard errno == EINPROGRESS else { return false }
            var fds = [pollfd(fd: sock, events: Int16(POLLOUT), revents: 0)]
            guard Glibc.poll(&fds, 1, 200) == 1 else { return false }
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(sock, SOL_SOCKET, SO_ERROR, &error, &length)
            guard error == 0 else { return false }
        }
        let request = Array((workload == .http ? "GET / HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n" : "PING\r\n").utf8)
        guard request.withUnsafeBytes({ send(sock, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return false }
        var fds = [pollfd(fd: sock, events: Int16(POLLIN), revents: 0)]
        guard Glibc.poll(&fds, 1, 200) == 1 else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = buffer.withUnsafeMutableBytes { recv(sock, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return false }
        return String(decoding: buffer[..<count], as: UTF8.self).hasPrefix(workload == .http ? "HTTP/1.1 200" : "+PONG")
    }

    /// SIGTERM, then up to 10 s for the launcher to clean up and exit, then SIGKILL; its status.
    static func stop(_ pid: pid_t, output: inout LineCollector) -> Int? {
        kill(pid, SIGTERM)
        let deadline = Clock.monotonicNanoseconds() + Clock.nanoseconds(seconds: 10)
        var status: Int32 = 0
        while true {
            let done = waitpid(pid, &status, WNOHANG)
            if done == pid { break }
            if done < 0 && errno != EINTR { return nil }
            if Clock.monotonicNanoseconds() > deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                break
            }
            output.poll(milliseconds: 10)
        }
        output.poll(milliseconds: 0)
        return (status & 0x7f) == 0 ? Int((status >> 8) & 0xff) : 128 + Int(status & 0x7f)
    }
}

/// wrk's `WRK-RESULT requests=N duration_us=D p50_us=… p99_us=… p999_us=… errors=E` line
/// (`ServerBench.wrkScript`), here and in the nested lab.
public struct WRKResult: Sendable {
    public var requestsPerSecond: Double?
    public var p50Us: Double?
    public var p99Us: Double?
    public var p999Us: Double?
    public var errors: Int?

    public init(_ line: String) {
        var fields: [String: Double] = [:]
        for word in line.split(separator: " ").drop(while: { $0 != "WRK-RESULT" }).dropFirst() {
            let pair = word.split(separator: "=", maxSplits: 1)
            if pair.count == 2, let value = Double(pair[1]), value.isFinite { fields[String(pair[0])] = value }
        }
        if let requests = fields["requests"], let duration = fields["duration_us"], duration > 0 {
            requestsPerSecond = requests / (duration / 1e6)
        }
        p50Us = fields["p50_us"]
        p99Us = fields["p99_us"]
        p999Us = fields["p999_us"]
        errors = fields["errors"].map { Int($0) }
    }
}

/// redis-benchmark's `--csv` line for the GET test: `"GET","rps","avg_latency_ms","min_latency_ms",
/// "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"` (no p99.9), here and in the
/// nested lab.
public struct RedisBenchmarkResult: Sendable {
    public var requestsPerSecond: Double
    public var p50Us: Double?
    public var p99Us: Double?

    /// nil unless `line` (from its `"GET"`) has the fields.
    public init?(_ line: String) {
        guard let start = line.fromFirst("\"GET\"") else { return nil }
        let fields = start.split(separator: ",").map { Double($0.filter { $0 != "\"" }) }
        guard fields.count >= 7, let rps = fields[1], rps.isFinite else { return nil }
        requestsPerSecond = rps
        p50Us = fields[4].map { $0 * 1000 }
        p99Us = fields[6].map { $0 * 1000 }
    }
}

/// The lines a launcher prints, read without blocking.
struct LineCollector {
    let reader: FileDescriptor
    var lines: [String] = []
    var pending = LineBuffer()
    var ended = false

    init(reader: FileDescriptor) { self.reader = reader }

    mutating func poll(milliseconds: Int32) {
        var fds = [pollfd(fd: reader.rawValue, events: Int16(POLLIN), revents: 0)]
        guard !ended, Glibc.poll(&fds, 1, milliseconds) == 1 else { return }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(reader.rawValue, $0.baseAddress, $0.count) }
            if n == 0 { ended = true; return }
            if n < 0 { return }
            lines += pending.append(Array(buffer[..<n]))
            if lines.count > 1000 { lines.removeFirst(lines.count - 1000) }
        }
    }
}
