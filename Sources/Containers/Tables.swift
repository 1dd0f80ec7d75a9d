#if canImport(Glibc)
import Glibc
#endif
import CLinux
import HostOS

/// Linux capabilities by name (linux/capability.h), as config.json and /proc/PID/status use them.
package enum Capabilities {
    package static let names = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
        "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
        "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
    ]

    /// The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
    package static let lastSupported: Int = {
        let text = Files.readText("/proc/sys/kernel/cap_last_cap") ?? ""
        return Int(text.split(separator: "\n").first ?? "") ?? names.count - 1
    }()

    /// A set of names → a bitmask. Names this kernel lacks are skipped (runc does the same and
    /// warns: a newer profile on an older kernel), unknown names are errors.
    package static func mask(_ list: [String], field: String, notes: ConfigNotes) throws(OCIError) -> UInt64 {
        var mask: UInt64 = 0
        for name in list {
            guard let number = names.firstIndex(of: name.uppercased()) else {
                throw OCIError("config.json: \(field): unknown capability \"\(name)\"")
            }
            if number > lastSupported { notes.ignored.append("\(field): \(name) (this kernel does not have it)"); continue }
            mask |= 1 << UInt64(number)
        }
        return mask
    }

}

/// Resource limits by name (RLIMIT_*).
package enum ResourceLimits {
    package static let numbers: [String: Int32] = [
        "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4, "RLIMIT_RSS": 5,
        "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9, "RLIMIT_LOCKS": 10,
        "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13, "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
    ]
}

/// Mount options as runc reads them (mount(8) names): flags, propagation, or file system data.
package enum MountOptions {
    package struct Parsed {
        var flags: UInt = 0
        var propagation: UInt = 0
        var data: [String] = []
        var bind = false
    }

    /// name → (flags to set, flags to clear).
    package static let flags: [String: (set: UInt, clear: UInt)] = {
        let f = { (v: Int) in UInt(v) }
        return [
            "defaults": (0, 0), "ro": (f(MS_RDONLY), 0), "rw": (0, f(MS_RDONLY)), "nosuid": (f(MS_NOSUID), 0), "suid": (0, f(MS_NOSUID)),
            "nodev": (f(MS_NODEV), 0), "dev": (0, f(MS_NODEV)), "noexec": (f(MS_NOEXEC), 0), "exec": (0, f(MS_NOEXEC)),
            "sync": (f(MS_SYNCHRONOUS), 0), "async": (0, f(MS_SYNCHRONOUS)), "dirsync": (f(MS_DIRSYNC), 0),
            "remount": (f(MS_REMOUNT), 0), "mand": (f(MS_MANDLOCK), 0), "nomand": (0, f(MS_MANDLOCK)),
            "atime": (0, f(MS_NOATIME)), "noatime": (f(MS_NOATIME), 0), "diratime": (0, f(MS_NODIRATIME)),
            "nodiratime": (f(MS_NODIRATIME), 0), "relatime": (f(MS_RELATIME), 0), "norelatime": (0, f(MS_RELATIME)),
            "strictatime": (f(MS_STRICTATIME), 0), "nostrictatime": (0, f(MS_STRICTATIME)),
            "bind": (f(MS_BIND), 0), "rbind": (f(MS_BIND) | f(MS_REC), 0),
        ]
    }()

    package static let propagation: [String: UInt] = {
        let f = { (v: Int) in UInt(v) }
        let rec = f(MS_REC)
        return [
            "private": f(MS_PRIVATE), "rprivate": f(MS_PRIVATE) | rec, "shared": f(MS_SHARED), "rshared": f(MS_SHARED) | rec,
            "slave": f(MS_SLAVE), "rslave": f(MS_SLAVE) | rec, "unbindable": f(MS_UNBINDABLE), "runbindable": f(MS_UNBINDABLE) | rec,
        ]
    }()

    /// Options runc knows that change nothing here (SELinux relabelling, runc's own tmpcopyup).
    package static let accepted: Set<String> = ["z", "Z", "tmpcopyup", "idmap", "ridmap"]

    package static func parse(_ options: [String]) -> Parsed {
        var parsed = Parsed()
        for option in options {
            if let (set, clear) = flags[option] {
                parsed.flags = (parsed.flags & ~clear) | set
                if option == "bind" || option == "rbind" { parsed.bind = true }
            } else if let value = propagation[option] {
                parsed.propagation = value
            } else if !accepted.contains(option) {
                parsed.data.append(option)
            }
        }
        return parsed
    }
}
