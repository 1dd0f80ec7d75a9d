import CSeccomp
#if canImport(Glibc)
import Glibc
#endif

/// An OCI seccomp profile compiled to a BPF program (by libseccomp, in this process). The child
/// only loads the bytes (clinux_process.seccomp_filter).
package struct CompiledSeccomp {
    package var program: [UInt8]
    package var instructions: Int
    package var flags: UInt32
    /// Rule names this libseccomp does not know (skipped, as runc does).
    package var unknownSyscalls: Int

    /// SCMP_ACT_* values (seccomp.h; part of libseccomp's ABI).
    package static func action(_ name: String, errno: UInt32?) -> UInt32 {
        switch name {
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": 0x0000_0000
        case "SCMP_ACT_KILL_PROCESS": 0x8000_0000
        case "SCMP_ACT_TRAP": 0x0003_0000
        case "SCMP_ACT_ERRNO": 0x0005_0000 | ((errno ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_TRACE": 0x7ff0_0000 | ((errno ?? UInt32(EPERM)) & 0xffff)
        case "SCMP_ACT_LOG": 0x7ffc_0000
        default: 0x7fff_0000  // SCMP_ACT_ALLOW
        }
    }

    package static func compile(_ profile: OCIConfig.Seccomp) throws(OCIError) -> CompiledSeccomp {
        let defaultAction = action(profile.defaultAction, errno: profile.defaultErrnoRet)
        let architectures = profile.architectures.map { name -> String in
            let short = String(name.dropFirst("SCMP_ARCH_".count)).lowercased()
            return short == "x86" ? "x86" : short
        }
        var arguments: [[cseccomp_argument]] = []
        var names: [String] = []
        var actions: [UInt32] = []
        for rule in profile.syscalls {
            let args = rule.args.map {
                cseccomp_argument(index: $0.index, value: $0.value, value_two: $0.valueTwo,
                                  op: Int32((OCIConfig.seccompOperators.firstIndex(of: $0.op) ?? 3) + 1))
            }
            for name in rule.names {
                names.append(name)
                actions.append(action(rule.action, errno: rule.errnoRet))
                arguments.append(args)
            }
        }
        let arena = CStrings()
        var rules = (0..<names.count).map { index in
            cseccomp_rule(name: arena.string(names[index]), action: actions[index],
                          arguments: UnsafePointer(arena.copy(arguments[index])), argument_count: Int32(arguments[index].count))
        }
        var archPointers = architectures.map { Optional(arena.string($0)) }
        var program: UnsafeMutableRawPointer?
        var length = 0
        var unknown: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let result = cseccomp_compile(defaultAction, &archPointers, Int32(architectures.count), &rules, Int32(rules.count),
                                      &program, &length, &unknown, &message, message.count)
        guard result == 0, let program else {
            throw OCIError("config.json: linux.seccomp: \(String(cString: message))")
        }
        defer { free(program) }
        var flags: UInt32 = 0
        for flag in profile.flags {
            switch flag {
            case "SECCOMP_FILTER_FLAG_TSYNC": flags |= 1
            case "SECCOMP_FILTER_FLAG_LOG": flags |= 2
            case "SECCOMP_FILTER_FLAG_SPEC_ALLOW": flags |= 4
            default: break
            }
        }
        let bytes = Array(UnsafeRawBufferPointer(start: program, count: length * 8))
        return CompiledSeccomp(program: bytes, instructions: length, flags: flags, unknownSyscalls: Int(unknown))
    }
}
