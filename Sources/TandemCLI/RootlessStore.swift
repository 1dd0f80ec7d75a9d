import Containers
import HostOS
import Images
#if canImport(Glibc)
import Glibc
#endif

/// A user's own image store, written without root, as podman's rootless storage is: the commands
/// that write it (import, pull, rm, prune) run again inside a user namespace where the user is
/// uid 0 and its /etc/subuid and /etc/subgid ranges are the other ids (`unshare --user
/// --map-root-user --map-auto`, util-linux 2.38+, through the setuid newuidmap/newgidmap of the
/// package uidmap). There a layer's owners can be set and its whiteouts made (0/0 devices, which a
/// user namespace may make); a container of the store's images maps the same ranges (the store
/// records them, `ImageStore.idMapping`), so it sees the owners the image says.
enum RootlessStore {
    /// Set for the command run again inside the namespace: the store and the user's state root
    /// (inside, uid 0's defaults would be root's).
    static let storeVariable = "TANDEM_ROOTLESS_STORE"
    static let stateVariable = "TANDEM_ROOTLESS_STATE"

    /// As root, or already inside: returns. Otherwise execs this command under unshare (does
    /// not return), or throws saying what is missing.
    static func enterIfNeeded(store: String) throws(ImageError) {
        guard geteuid() != 0, getenv(storeVariable) == nil else { return }
        guard let unshare = Files.which("unshare") else { throw ImageError("a rootless image store needs unshare (util-linux)") }
        guard Files.which("newuidmap") != nil, Files.which("newgidmap") != nil else {
            throw ImageError("a rootless image store needs newuidmap and newgidmap (apt-get install uidmap) and ranges for this user in /etc/subuid and /etc/subgid")
        }
        guard let me = Files.currentExecutable() else { throw ImageError("cannot find my own executable") }
        setenv(storeVariable, store, 1)
        setenv(stateVariable, ContainerSpec.defaultStateRoot, 1)
        let arguments = [unshare, "--user", "--map-root-user", "--map-auto", "--", me] + CommandLine.arguments.dropFirst()
        var pointers = arguments.map { strdup($0) } + [nil]
        execv(unshare, &pointers)
        throw ImageError(SystemError("execv", unshare))
    }

    /// The store to use: the one the outer command chose, inside the namespace.
    static var store: String? { getenv(storeVariable).map { String(cString: $0) } }

    /// The user's container state root, inside the namespace.
    static var stateRoot: String { getenv(stateVariable).map { String(cString: $0) } ?? ContainerSpec.defaultStateRoot }
}
