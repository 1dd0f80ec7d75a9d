import HostOS
import TandemLaunch

/// A Linux guest's files and sizes as `tandem vm run` gives them to libvirt or QEMU, checked:
/// each error names the option.
struct LinuxGuest {
    var kernel: String
    var initrd: String?
    var memoryMiB: Int

    static func check(_ command: VMRunCommand) -> Result<LinuxGuest, VMRunner.Message> {
        guard let kernel = command.kernel ?? LinuxDefaults.kernel() else {
            return .failure(.init(text: "no kernel: pass --kernel PATH, or install Debian's linux-image-cloud-amd64 (make deps)"))
        }
        for (flag, path) in [("--kernel", Optional(kernel)), ("--initrd", command.initrd)] {
            guard let path else { continue }
            switch Files.kind(path) {
            case .regular: continue
            case .missing: return .failure(.init(text: "\(flag) \(path): does not exist"))
            case .directory: return .failure(.init(text: "\(flag) \(path): is a directory, not a file"))
            case .other: return .failure(.init(text: "\(flag) \(path): is not a regular file (a FIFO, a device or a socket)"))
            }
        }
        guard command.vcpus >= 1, command.vcpus <= 64 else { return .failure(.init(text: "--vcpus \(command.vcpus): must be between 1 and 64")) }
        let memory = command.memory ?? 256
        guard memory >= 64 else { return .failure(.init(text: "--memory \(memory): a Linux guest needs at least 64 MiB")) }
        if let problem = VMRunOptions.timeoutProblem(command.timeout) { return .failure(.init(text: problem)) }
        var initrd = command.initrd ?? LinuxDefaults.initramfs()
        if let path = initrd, Files.kind(path) != .regular { initrd = nil }
        return .success(LinuxGuest(kernel: kernel, initrd: initrd, memoryMiB: memory))
    }
}
