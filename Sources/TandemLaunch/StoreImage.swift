import Containers
import HostOS
import Images

/// A container spec for an image in the store, with the image config honoured as Docker and
/// podman honour it: Entrypoint + (the command after `--`, else Cmd), Env (the user's --env on
/// top), WorkingDir, User (looked up in the image's own /etc/passwd and /etc/group), HOME from
/// the user's passwd entry unless Env sets it. The root is the image's layers (top first) under
/// the container's scratch layer.
enum StoreImage {
    static func spec(_ options: CtrRunOptions) throws(ContainerError) -> ContainerSpec {
        let reference = options.imageReference ?? ""
        let store = ImageStore(root: options.store.map(Files.absolute) ?? ImageStore.defaultRoot)
        let record: ImageRecord, config: ImageConfig
        do {
            // Held while this process lives: the run's tandem, or a detached container's monitor.
            record = try store.findAndHold(reference)
            config = try store.config(of: record)
        } catch { throw ContainerError(error.description) }
        let name = record.names.first ?? record.id.short
        if !config.architecture.isEmpty && config.architecture != ImageStore.hostArchitecture {
            throw ContainerError("image \(reference): built for \(config.os)/\(config.architecture), this host is linux/\(ImageStore.hostArchitecture)")
        }
        if options.userns, let old = record.layers.first(where: { store.layer($0.diffID)?.userOverlayXattrs != true }) {
            // Its opaque directories would not be opaque to an overlay in a user namespace.
            throw ContainerError("image \(name): --userns: layer \(old.diffID.short) was imported before Tandem marked opaque directories for user namespaces: import the image again (tandem image rm \(name), then tandem image import)")
        }
        let layers = record.layers.reversed().map { store.layerPath($0.diffID) }
        let root = LayeredRoot(layers: layers)
        let command = config.command(overriding: options.command)
        guard let first = command.first, !first.isEmpty else {
            throw ContainerError("image \(name) has no Entrypoint or Cmd: give the command after --")
        }
        let user: ImageUser
        do { user = try ImageUser.resolve(config.user, in: root) } catch { throw ContainerError("image \(name): \(error.description)") }
        var environment = config.env
        if !environment.contains(where: { $0.hasPrefix("PATH=") }) { environment.insert("PATH=\(ContainerSpec.defaultPath)", at: 0) }
        if !environment.contains(where: { $0.hasPrefix("HOME=") }) { environment.append("HOME=\(user.home)") }
        let path = environment.last { $0.hasPrefix("PATH=") }.map { String($0.dropFirst(5)) } ?? ContainerSpec.defaultPath
        guard let program = root.executable(first, searchPath: path) else {
            throw ContainerError("image \(name) has no executable \(first)\(first.contains("/") ? "" : " on PATH \(path)")")
        }
        var spec = ContainerSpec(id: options.monitorID ?? ContainerSpec.newID(), root: .layers(layers), command: command, hostname: options.hostname)
        spec.environment = environment
        spec.program = program
        spec.workingDirectory = config.workingDir ?? "/"
        spec.user = (user.uid, user.gid, user.additionalGids)
        if ContainerSpec.rootless, let mapping = store.idMapping() {
            spec.rootlessMappings = (mapping.uid.map { ($0.containerID, $0.hostID, $0.size) }, mapping.gid.map { ($0.containerID, $0.hostID, $0.size) })
        }
        spec.imageID = record.id.description
        spec.imageStore = store.root
        spec.imageName = name
        if let signal = config.stopSignal {
            guard Signals.number(signal) != nil else { throw ContainerError("image \(name): config.StopSignal \(signal): not a signal") }
            spec.stopSignal = signal
        }
        return spec
    }
}
