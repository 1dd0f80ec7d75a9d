/*
 * clinux_container.h — the part of a container's start that must not be Swift: everything between
 * clone() and execve(). Swift is not async-signal-safe and its runtime may hold locks another
 * thread owned at clone time, so the child runs only this C, which makes plain system calls.
 *
 * The parent (Swift) prepares a complete description, calls clinux_container_spawn, writes the
 * child's uid/gid maps, then sends one byte on `sync_fd`'s other end: the child sets itself up
 * (mounts, devices, sysctls) while the parent makes its cgroups. If `ready_fd` is set the child
 * reports 'h' there before pivot_root and waits for a second message on `sync_fd`: one byte with
 * the cgroup files it joins itself (`cgroup_joins`) attached. With `join_report` it then reports
 * 'j' and waits for a third byte (the parent runs the OCI prestart/createRuntime/createContainer
 * hooks meanwhile, with the process in its cgroups), and it reports 'r' when it waits at its entry
 * point. It execs after a byte on `exec_fd` (for the OCI runtime: `start`), so the program never
 * runs outside its limits. Without `ready_fd` the parent moves the child into its cgroups itself. If a step fails, the child writes
 * "step(argument): ERRNAME" to `error_fd` and exits 127; `error_fd` is close-on-exec, so EOF
 * without bytes means exec happened.
 */
#ifndef CLINUX_CONTAINER_H
#define CLINUX_CONTAINER_H

#include <stdint.h>
#include <sys/types.h>
#include <linux/sched.h>  /* CLONE_NEW*, CLONE_PARENT: Swift sees these only through this header */

/** One mount made inside the container's root, in order, before pivot_root. */
struct clinux_mount {
    const char *source;      /* a host path (bind) or a name ("proc", "tmpfs") */
    const char *target;      /* inside the container, absolute ("/proc") */
    const char *fstype;      /* NULL for a bind mount */
    unsigned long flags;     /* MS_* */
    const char *data;        /* fs options, or NULL */
    int make_target;         /* 0: must exist, 1: mkdir -p, 2: create an empty file (binding a file) */
    int remount;             /* a bind mount remounted with `flags` afterwards (ro, nosuid...: a bind ignores them) */
    int optional;            /* failure is not an error (e.g. mqueue where the kernel lacks it) */
    unsigned long propagation; /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC), applied after; 0: none */
};

/** A device node made in the container's /dev (OCI linux.devices); bound from the host in a user namespace. */
struct clinux_device {
    const char *path;        /* inside the container */
    mode_t mode;             /* S_IFCHR/S_IFBLK/S_IFIFO | permissions */
    unsigned major, minor;
    uid_t uid;
    gid_t gid;
};

struct clinux_rlimit { int resource; uint64_t soft, hard; };

/** A namespace to join (setns) instead of creating it: OCI linux.namespaces[].path. */
struct clinux_join { int type; const char *path; };

/** The program a container (or `exec`) runs and the identity it runs with. */
struct clinux_process {
    const char *path;              /* resolved inside the new root */
    char *const *argv;
    char *const *envp;
    const char *cwd;               /* NULL: / */
    int set_ids;                   /* switch to uid/gid/groups (else: stay root in the container) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    int group_count;
    int umask;                     /* -1: keep */
    /* Capability sets (bit N = capability N). The bounding set is reduced before the ids change.
     * A bounding set of all ones (~0) leaves every set as it is (the runtime's own hooks). */
    uint64_t cap_bounding, cap_effective, cap_permitted, cap_inheritable, cap_ambient;
    const struct clinux_rlimit *rlimits;
    int rlimit_count;
    int no_new_privileges;
    /* A compiled seccomp filter (struct sock_filter[]), loaded last before exec when
     * no_new_privileges is set, else while the process still has CAP_SYS_ADMIN (as runc). */
    const void *seccomp_filter;
    unsigned short seccomp_length;
    unsigned int seccomp_flags;
    long personality;              /* -1: keep */
    int keep_groups;               /* setgroups is denied (a rootless user namespace mapping only the caller's
                                    * own ids): the supplementary groups stay as they are */
    const char *apparmor_profile;  /* NULL: none; else the AppArmor profile set for the exec ("exec NAME") */
    const char *selinux_label;     /* NULL: none; else the SELinux label for the exec (and the keys it makes) */
    int console_fd;                /* a pty's slave: new session, controlling terminal, stdio; -1: keep stdio */
};

/** The most layers an idmapped root takes (one SCM_RIGHTS message; Docker's limit is 125). */
#define CLINUX_MAX_IDMAPPED 128

struct clinux_container {
    int clone_flags;               /* CLONE_NEW* (the child unshares CLINUX_UNSHARED_LATER after the first go-ahead,
                                    * CLONE_NEWCGROUP once in its cgroups);
                                    * CLONE_PARENT: the caller's parent adopts it (a subreaper reaps it, as with runc) */
    const struct clinux_join *joins; /* setns'd first thing after clone, in order (user first) */
    int join_count;
    const char *pid_namespace;     /* join this pid namespace (the parent's thread enters it around clone) */
    const char *hostname;          /* NULL: keep */
    const char *domainname;        /* NULL: keep */
    /* The root: an overlay of `lower` (read-only, shared) and `upper`/`work` (this container's),
     * mounted at `root` — with `upper` NULL, on a tmpfs mounted there first, in the container's
     * mount namespace only; or, when lower is NULL, `root` itself bind-mounted. */
    const char *root;
    const char *lower, *upper, *work;
    int overlay_userxattr;         /* overlay in a user namespace keeps its xattrs in user.* */
    /* With a user namespace of its own, instead of `lower`: this many idmapped, detached copies
     * of the image's layers (top first; see clinux_idmapped_tree), made by the parent once the
     * namespace's ids are mapped and sent with the first go-ahead. The child attaches them under
     * a tmpfs at `root` (move_mount) and overlays them there: host root's files show as the
     * container's root's without a shifted copy of the image. At most CLINUX_MAX_IDMAPPED. */
    int idmapped_lower_count;
    unsigned long root_propagation; /* rootfsPropagation: (r)slave applied to / first, (r)shared,
                                    * (r)private, (r)unbindable to the new root last; 0: all private */
    int no_pivot;                  /* MS_MOVE + chroot instead of pivot_root (runc --no-pivot) */
    int host_mount_namespace;      /* no mount namespace of its own (none listed: inherited): nothing is
                                    * mounted, not even propagation changed, and the root is entered
                                    * by chroot alone (the description then has no mounts) */
    int read_only_root;
    const struct clinux_mount *mounts;
    int mount_count;
    int late_mount_count;          /* the last N mounts wait for the second go-ahead (with ready_fd): they bind
                                    * the container's cgroup directories, which the parent makes meanwhile */
    const struct clinux_device *devices;
    int device_count;
    const char *const *symlinks;   /* pairs: link target, link path inside the root */
    int symlink_count;
    const char *const *sysctls;    /* pairs: /proc/sys/... path, value (written in the new namespaces) */
    int sysctl_count;
    const char *const *masked_paths;   /* after pivot_root: /dev/null over files, empty ro tmpfs over dirs */
    int masked_count;
    const char *const *readonly_paths; /* after pivot_root: remounted read-only */
    int readonly_count;
    int loopback_up;               /* bring `lo` up in the new network namespace */
    int make_cwd;                  /* process.cwd made (0755, root) inside the root when missing, before
                                    * pivot_root: runc does so (MkdirAll in the jail), and Docker for an
                                    * image's WorkingDir */
    struct clinux_process process;
    /* The cgroup files the second go-ahead carries open (SCM_RIGHTS), named here for messages:
     * the child writes "0" to each, which moves only the writing thread. On cgroup v1 (the "tasks"
     * files) that is the one move that skips the kernel's global cgroup_threadgroup_rwsem, whose
     * write side waits for an RCU grace period (7-25 ms on this host when no move preceded it by a
     * few ms); the parent writing our pid to cgroup.procs would take it. The parent opened them,
     * so the kernel's permission check (the opener's credentials) passes in a user namespace too. */
    const char *const *cgroup_joins;
    int cgroup_join_count;
    int join_report;               /* report 'j' once in the cgroups and wait for a third byte (hooks run) */
    int sync_fd;                   /* a SOCK_SEQPACKET socket: the parent's go-aheads (ids mapped; cgroup files; after hooks) */
    int ready_fd;                  /* write end or -1: 'h' before pivot_root (hooks), 'r' at the entry point */
    int exec_fd;                   /* read end: the go-ahead to exec (in its cgroups); may equal sync_fd */
    int error_fd;                  /* write end, close-on-exec */
};

/** The most cgroup files one go-ahead carries (v1 has at most 14 hierarchies). */
#define CLINUX_MAX_CGROUP_JOINS 16

/** The namespaces the child unshares itself after the first go-ahead instead of clone making them.
 * clone makes every namespace before it returns: a new network namespace alone takes ~0.5 ms here,
 * spent while the parent waits. Unshared by the child, they are made while the parent makes the
 * container's cgroups (runc's nsexec unshares them in its child too). The user namespace (it must
 * come first, and the parent maps it) and the pid namespace (the child must be its first process)
 * stay with clone; the cgroup namespace is unshared once in the container's cgroups. */
#define CLINUX_UNSHARED_LATER (CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/** clone()s the container's first process with `c->clone_flags | SIGCHLD`, less what it unshares
 * itself (CLINUX_UNSHARED_LATER, CLONE_NEWCGROUP); returns its host pid, or -errno. */
pid_t clinux_container_spawn(const struct clinux_container *c);

/**
 * Runs `p` in the namespaces of the running container process `target` (setns to its user, mnt,
 * pid, uts, ipc, net and cgroup namespaces it does not share with us, then fork so the pid
 * namespace applies), as `p` says (ids, capabilities, seccomp, cwd). The intermediate process
 * writes "0" to each of `cgroup_files` (may be NULL) first, joining them (v1: pass the "tasks"
 * files, which move the writing thread without the global lock; see `cgroup_joins`). `stdin_fd` (or -1: keep) becomes its
 * standard input (OCI hooks read the state there). Returns the host pid of the intermediate
 * process, which exits with the program's status (128+N for signal N), or -errno; failures inside
 * are written to `error_fd` as for spawn.
 */
pid_t clinux_container_exec(pid_t target, const char *const *cgroup_files, int cgroup_count,
                            const struct clinux_process *p, int stdin_fd, int error_fd);

#endif
