#if canImport(Glibc)
import Glibc
#endif
import HostOS

/// Dynamically linked host programs the image carries (Debian's redis-server for the `redis`
/// server workload): the program under its image name in /bin, and every shared library the
/// host's dynamic loader resolves for it (`ldd`), at the same path, with the loader itself. The
/// files are copied, not linked, so the image stays whole in any root.
public enum HostPrograms {
    /// Debian's redis-server is redis-check-rdb under another name (redis-tools ships the one
    /// binary; started as anything but `redis-check-*` it is the server): no service installed.
    public static let redis = (name: "redis-server", path: "/usr/bin/redis-check-rdb")

    /// `/bin/redis [PORT]`, carried with redis-server: the redis server workload as every backend
    /// runs it — tandem-init in a VM (`tandem.workload=redis tandem.args=PORT`), a container, the
    /// bare process (the image's directory on the host: the server is found beside the script).
    /// It says where it listens (the server benchmark's client reaches a sandbox at the first
    /// non-loopback address of that line), then becomes redis-server on PORT, saving nothing.
    public static let redisWorkload = """
        #!/bin/sh
        port=${1:-6379}
        address=$(ip -4 -o addr show dev eth0 2>/dev/null | sed -n 's/.* inet \\([0-9.]*\\)\\/.*/\\1/p')
        echo "redis: accepting on port $port at $address 127.0.0.1"
        exec "$(dirname "$0")/redis-server" --port "$port" --save '' --appendonly no --protected-mode no

        """

    /// The entries for `programs` (image name, host path), their libraries, and the directories;
    /// with redis-server, its workload script (`redisWorkload`).
    public static func imageEntries(_ programs: [(name: String, path: String)]) throws(ImageError) -> [ImageEntry] {
        var entries: [ImageEntry] = []
        if programs.contains(where: { $0.name == redis.name }) {
            entries.append(ImageEntry(path: "bin/redis", kind: .file(Array(redisWorkload.utf8)), permissions: 0o755))
        }
        var libraries: Set<String> = []
        for program in programs {
            entries.append(ImageEntry(path: "bin/" + program.name, kind: .file(try GuestImage.read(program.path, program.path)), permissions: 0o755))
            for library in try sharedLibraries(of: program.path) { libraries.insert(library) }
        }
        var directories: Set<String> = []
        for library in libraries.sorted() {
            var parent = Files.directory(of: library)
            while parent != "/" && !parent.isEmpty {
                directories.insert(String(parent.dropFirst()))
                parent = Files.directory(of: parent)
            }
            // The library's own bytes under the name the loader asks for (symlinks resolved).
            entries.append(ImageEntry(path: String(library.dropFirst()), kind: .file(try GuestImage.read(library, library)), permissions: 0o755))
        }
        entries += directories.sorted().map { ImageEntry(path: $0, kind: .directory, permissions: 0o755) }
        return entries
    }

    /// The absolute paths `ldd` prints for `program`: `name => /path (address)` and the loader's
    /// `/path (address)`; a library it cannot find is an error naming it.
    static func sharedLibraries(of program: String) throws(ImageError) -> [String] {
        guard let ldd = Files.which("ldd") else { throw ImageError(description: "ldd (libc-bin) is needed to copy \(program)'s libraries") }
        let result: Subprocess.Result
        do { result = try Subprocess.run(ldd, [program], mergeStandardError: true) } catch {
            throw ImageError(description: "cannot run ldd \(program): \(error)")
        }
        guard result.status == 0 else { throw ImageError(description: "ldd \(program): status \(result.status): \(result.output.prefix(200))") }
        var paths: [String] = []
        for line in result.output.split(separator: "\n") {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if line.contains("not found") { throw ImageError(description: "\(program) needs \(words.first ?? "a library"), which this host does not have") }
            if let arrow = words.firstIndex(of: "=>"), arrow + 1 < words.count, words[arrow + 1].hasPrefix("/") {
                paths.append(words[arrow + 1])
            } else if let first = words.first, first.hasPrefix("/") {
                paths.append(first)
            }
        }
        return paths
    }
}
