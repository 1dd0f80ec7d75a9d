/*
 * clinux_container.h — the part of a container's start that must not be Swift: everything between
 * clone() and execve(). Swift is not async-signal-safe and its runtime may hold locks another
 * thread owned at clone time, so the child runs only this C, which makes plain system calls.
 *
 * The parent (Swift) prepares a complete description, calls clinux_container_spawn, writes the
 * child's uid/gid maps, then writes one byte to `sync_fd`'s other end: the child sets itself up
 * (mounts, pivot_root, capabilities) while the parent moves it into its cgroups, then waits for a
 * byte on `exec_fd` before it execs, so the program never runs outside its limits. If a step fails, the child writes "step(argument): ERRNAME" to
 * `error_fd` and exits 127; `error_fd` is close-on-exec, so EOF without bytes means exec happened.
 */
#ifndef CLINUX_CONTAINER_H
#define CLINUX_CONTAINER_H

#include <stdint.h>
#include <sys/types.h>
#include <linux/sched.h>  /* CLONE_NEW*: Swift sees these only through this header */

/** One mount made inside the container's root, in order, before pivot_root. */
struct clinux_mount {
    const char *source;      /* a host path (bind) or a name ("proc", "tmpfs") */
    const char *target;      /* inside the container, absolute ("/proc") */
    const char *fstype;      /* NULL for a bind mount */
    unsigned long flags;     /* MS_* */
    const char *data;        /* fs options, or NULL */
    int make_target;         /* 0: must exist, 1: mkdir -p, 2: create an empty file (binding a file) */
    int read_only_bind;      /* a bind mount remounted read-only afterwards */
    int optional;            /* failure is not an error (e.g. mqueue where the kernel lacks it) */
};

struct clinux_container {
    int clone_flags;               /* CLONE_NEW* */
    const char *hostname;          /* NULL: keep */
    /* The root: an overlay of `lower` (read-only, shared) and `upper`/`work` (this container's),
     * mounted at `root`; or, when lower is NULL, `root` itself bind-mounted. */
    const char *root;
    const char *lower, *upper, *work;
    int overlay_userxattr;         /* overlay in a user namespace keeps its xattrs in user.* */
    int read_only_root;
    const struct clinux_mount *mounts;
    int mount_count;
    const char *const *masked_paths;   /* after pivot_root: /dev/null over files, empty ro tmpfs over dirs */
    int masked_count;
    const char *const *readonly_paths; /* after pivot_root: remounted read-only */
    int readonly_count;
    int loopback_up;               /* bring `lo` up in the new network namespace */
    uint64_t capabilities;         /* the bounding/effective/permitted/inheritable set to keep */
    int no_new_privileges;
    const char *cwd;
    const char *path;              /* resolved inside the new root */
    char *const *argv;
    char *const *envp;
    int sync_fd;                   /* read end: the parent's go-ahead to set up (ids mapped) */
    int exec_fd;                   /* read end: the go-ahead to exec (in its cgroups); may equal sync_fd */
    int error_fd;                  /* write end, close-on-exec */
};

/** clone()s the container's first process with `c->clone_flags | SIGCHLD`; returns its host pid, or -errno. */
pid_t clinux_container_spawn(const struct clinux_container *c);

/**
 * Runs argv[0] (resolved inside the container) in the namespaces of the running container process
 * `target` (setns to its user, mnt, pid, uts, ipc, net and cgroup namespaces, then fork so the pid
 * namespace applies, chdir to /, exec). `cgroup_procs` (a cgroup.procs path, may be NULL) receives
 * the new process before it execs. Returns the host pid of the process that execs, or -errno;
 * failures inside are written to `error_fd` as for spawn.
 */
pid_t clinux_container_exec(pid_t target, const char *const *cgroup_procs, int cgroup_count,
                            const char *path, char *const *argv, char *const *envp, int error_fd);

#endif
