/*
 * The container's first process, from clone() to execve(), and `exec` into a running container.
 * See clinux_container.h for the protocol with the Swift parent. Only system calls and
 * async-signal-safe libc functions are used after clone.
 */
#define _GNU_SOURCE
#include "clinux_container.h"
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/personality.h>
#include <sys/sysmacros.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/close_range.h>

/* move_mount, where the C library has no names for it yet (glibc before 2.36). */
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

/* Writes "step(argument): ERRNAME" to the error pipe and ends the child. */
static void fail(int error_fd, const char *step, const char *argument) {
    int saved = errno;
    char message[1024];
    const char *name = strerrorname_np(saved);
    int length = snprintf(message, sizeof message, "%s(%s): %s", step, argument ? argument : "", name ? name : "unknown error");
    if (length > 0) {
        ssize_t ignored = write(error_fd, message, (size_t)length < sizeof message ? (size_t)length : sizeof message - 1);
        (void)ignored;
    }
    _exit(127);
}

/* Marks every descriptor from `lowest` up close-on-exec (close_range, Linux 5.11+; older kernels:
 * one fcntl per open descriptor). */
static void close_on_exec_from(int lowest) {
#ifdef CLOSE_RANGE_CLOEXEC
    if (syscall(SYS_close_range, lowest, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
#endif
    long max = sysconf(_SC_OPEN_MAX);
    for (int fd = lowest; fd < max && fd < 65536; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* A mount point inside the root, by kind (struct clinux_mount.make_target): 0 must exist, 1 a
 * directory made if missing, 2 a file made if missing. An O_PATH descriptor, or -1. */
static int mount_point(int root_fd, const char *path, int kind) {
    switch (kind) {
    case 1: return clinux_mkdir_in_root(root_fd, path, 0755);
    case 2: return clinux_file_in_root(root_fd, path, 0644);
    default: return clinux_open_in_root(root_fd, path, O_PATH);
    }
}

/* mount(2) onto the file `fd` holds: the path the kernel is given cannot be swapped for a symlink. */
static int mount_on(const char *source, int fd, const char *fstype, unsigned long flags, const void *data) {
    char path[64];
    clinux_fd_path(fd, path, sizeof path);
    return mount(source, path, fstype, flags, data);
}

/* Changes flags or propagation of the mount now at `path` inside the root: it is opened again, so
 * the descriptor holds the new mount, not the directory it covers. */
static void remount_in_root(const struct clinux_container *c, int root_fd, const char *path, unsigned long flags, const char *step) {
    int fd = clinux_open_in_root(root_fd, path, O_PATH);
    if (fd < 0) fail(c->error_fd, "resolve in root", path);
    if (mount_on(NULL, fd, NULL, flags, NULL) != 0) fail(c->error_fd, step, path);
    close(fd);
}

/* Raises the loopback interface of the new network namespace. */
static void loopback_up(int error_fd) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) fail(error_fd, "socket", "AF_INET");
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(sock, SIOCGIFFLAGS, &request) != 0) fail(error_fd, "ioctl SIOCGIFFLAGS", "lo");
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(sock, SIOCSIFFLAGS, &request) != 0) fail(error_fd, "ioctl SIOCSIFFLAGS", "lo");
    close(sock);
}

/* The capability sets, after the bounding set was reduced (bits beyond CAP_LAST_CAP are ignored). */
static void set_capabilities(int error_fd, const struct clinux_process *p) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (int i = 0; i < 2; i++) {
        data[i].effective = (uint32_t)(p->cap_effective >> (32 * i));
        data[i].permitted = (uint32_t)(p->cap_permitted >> (32 * i));
        data[i].inheritable = (uint32_t)(p->cap_inheritable >> (32 * i));
    }
    if (syscall(SYS_capset, &header, data) != 0) fail(error_fd, "capset", NULL);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) fail(error_fd, "prctl PR_CAP_AMBIENT_CLEAR_ALL", NULL);
    /* The kernel raises an ambient capability only if it is permitted and inheritable; runc
     * skips the others (e.g. `runc spec` lists ambient capabilities but no inheritable ones). */
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
        if (!(p->cap_ambient & p->cap_permitted & p->cap_inheritable & (1ULL << cap))) continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) {
            char number[16];
            snprintf(number, sizeof number, "%d", cap);
            fail(error_fd, "prctl PR_CAP_AMBIENT_RAISE", number);
        }
    }
}

static void load_seccomp(int error_fd, const struct clinux_process *p) {
    struct sock_fprog program = { .len = p->seccomp_length, .filter = (struct sock_filter *)p->seccomp_filter };
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, p->seccomp_flags, &program) != 0) fail(error_fd, "seccomp", "SECCOMP_SET_MODE_FILTER");
}

/* Resource limits and personality: set before the process reports it is at its entry point, so a
 * limit the kernel refuses fails `create` (as with runc), not `start`. */
static void apply_limits(const struct clinux_process *p, int error_fd) {
    for (int i = 0; i < p->rlimit_count; i++) {
        struct rlimit limit = { .rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard };
        if (setrlimit(p->rlimits[i].resource, &limit) != 0) {
            char number[16];
            snprintf(number, sizeof number, "%d", p->rlimits[i].resource);
            fail(error_fd, "setrlimit", number);
        }
    }
    if (p->personality >= 0 && personality((unsigned long)p->personality) < 0) fail(error_fd, "personality", NULL);
}

/* Writes `prefix value` to the first of `paths` (NULL-terminated) that exists: a security
 * module's label for our next exec, through the container's /proc (runc's and crun's way). */
static void set_exec_attribute(int error_fd, const char *const *paths, const char *prefix, const char *value) {
    char text[4096];
    int length = snprintf(text, sizeof text, "%s%s", prefix, value);
    if (length < 0 || (size_t)length >= sizeof text) { errno = ENAMETOOLONG; fail(error_fd, "set label", value); }
    for (int i = 0; paths[i]; i++) {
        int fd = open(paths[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && paths[i + 1]) continue;
        if (fd < 0) fail(error_fd, "open", paths[i]);
        if (write(fd, text, (size_t)length) != length) fail(error_fd, "write", paths[i]);
        close(fd);
        return;
    }
}

/* The security module labels the program is exec'd under, set while every privilege is still
 * ours (runc's order): for a container's first process before it reports ready, so a profile the
 * kernel refuses fails `create`, as with runc. */
static void set_security_labels(const struct clinux_process *p, int error_fd) {
    if (p->apparmor_profile) {
        static const char *const paths[] = { "/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec", NULL };
        set_exec_attribute(error_fd, paths, "exec ", p->apparmor_profile);
    }
    if (p->selinux_label) {
        static const char *const exec[] = { "/proc/thread-self/attr/exec", NULL };
        static const char *const keys[] = { "/proc/thread-self/attr/keycreate", NULL };
        set_exec_attribute(error_fd, exec, "", p->selinux_label);
        set_exec_attribute(error_fd, keys, "", p->selinux_label);
    }
}

/* The last steps before exec, shared by a container's first process and `exec`: terminal,
 * limits, capabilities, ids, seccomp. Order as runc's: the bounding set shrinks while we are still
 * root; KEEPCAPS keeps the permitted set across setuid; capset after it. */
static void become(const struct clinux_process *p, int error_fd) {
    if (p->console_fd >= 0) {
        if (setsid() < 0) fail(error_fd, "setsid", NULL);
        if (ioctl(p->console_fd, TIOCSCTTY, 0) != 0) fail(error_fd, "ioctl TIOCSCTTY", "console");
        for (int fd = 0; fd < 3; fd++) {
            if (dup2(p->console_fd, fd) < 0) fail(error_fd, "dup2", "console");
        }
        if (p->console_fd > 2) close(p->console_fd);
    }
    if (p->seccomp_filter && !p->no_new_privileges) load_seccomp(error_fd, p);
    int keep_all = p->cap_bounding == ~0ULL;
    if (!keep_all) {
        for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
            if (p->cap_bounding & (1ULL << cap)) continue;
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail(error_fd, "prctl PR_CAPBSET_DROP", NULL);
        }
    }
    if (p->set_ids) {
        if (!keep_all && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) fail(error_fd, "prctl PR_SET_KEEPCAPS", NULL);
        if (!p->keep_groups && setgroups((size_t)p->group_count, p->groups) != 0) fail(error_fd, "setgroups", NULL);
        char id[32];
        snprintf(id, sizeof id, "%u", (unsigned)p->gid);
        if (setresgid(p->gid, p->gid, p->gid) != 0) fail(error_fd, "setresgid", id);
        snprintf(id, sizeof id, "%u", (unsigned)p->uid);
        if (setresuid(p->uid, p->uid, p->uid) != 0) fail(error_fd, "setresuid", id);
        if (!keep_all) prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    }
    if (!keep_all) set_capabilities(error_fd, p);
    if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail(error_fd, "prctl PR_SET_NO_NEW_PRIVS", NULL);
    if (p->cwd && chdir(p->cwd) != 0) fail(error_fd, "chdir", p->cwd);
    umask(p->umask >= 0 ? (mode_t)p->umask : 022);

    /* Default dispositions for the program (the parent may have blocked or ignored signals). */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    /* Only stdin, stdout and stderr cross into the container: every other descriptor the runtime
     * (or whoever started it) had open closes at exec. */
    close_on_exec_from(3);
    if (p->seccomp_filter && p->no_new_privileges) load_seccomp(error_fd, p);
    execve(p->path, p->argv, p->envp);
    fail(error_fd, "execve", p->path);
}

/* The mounts [from, to) of the description, in order, on the root `root_fd`. */
static void make_mounts(const struct clinux_container *c, int root_fd, int from, int to) {
    for (int i = from; i < to; i++) {
        const struct clinux_mount *m = &c->mounts[i];
        int fd = mount_point(root_fd, m->target, m->make_target);
        if (fd < 0) {
            if (m->optional) continue;
            fail(c->error_fd, "resolve in root", m->target);
        }
        int mounted = mount_on(m->source, fd, m->fstype, m->flags, m->data);
        close(fd);
        if (mounted != 0) {
            if (m->optional) continue;
            fail(c->error_fd, m->fstype ? "mount" : "mount --bind", m->target);
        }
        if (m->remount) {
            remount_in_root(c, root_fd, m->target, (m->flags & ~(unsigned long)MS_REC) | MS_BIND | MS_REMOUNT, "mount -o remount,bind");
        }
        if (m->propagation) remount_in_root(c, root_fd, m->target, m->propagation, "mount --make-*");
    }
}

static void make_device(const struct clinux_container *c, int root_fd, int in_user_namespace, const struct clinux_device *d) {
    char name[NAME_MAX + 1];
    int parent = clinux_parent_in_root(root_fd, d->path, name, sizeof name);
    if (parent < 0) fail(c->error_fd, "resolve in root", d->path);
    if (in_user_namespace) {
        /* mknod is not allowed in a user namespace: bind the host's node of the same path (runc's way). */
        int made = openat(parent, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (made >= 0) close(made);
        int fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 || mount_on(d->path, fd, NULL, MS_BIND, NULL) != 0) fail(c->error_fd, "mount --bind device", d->path);
        close(fd);
        close(parent);
        return;
    }
    /* mknodat and fchownat never follow a symlink in the last component. */
    if (mknodat(parent, name, d->mode, makedev(d->major, d->minor)) != 0) {
        if (errno != EEXIST || unlinkat(parent, name, 0) != 0 || mknodat(parent, name, d->mode, makedev(d->major, d->minor)) != 0) {
            fail(c->error_fd, "mknod", d->path);
        }
    }
    if (fchownat(parent, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) != 0) fail(c->error_fd, "chown", d->path);
    close(parent);
}

static void write_sysctl(int error_fd, const char *path, const char *value) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail(error_fd, "open", path);
    size_t length = strlen(value);
    if (write(fd, value, length) != (ssize_t)length) fail(error_fd, "write", path);
    close(fd);
}

static void report(const struct clinux_container *c, char what) {
    if (c->ready_fd < 0) return;
    if (write(c->ready_fd, &what, 1) != 1) fail(c->error_fd, "write", "ready pipe");
}

static void await(int fd) {
    char go;
    ssize_t got;
    do { got = read(fd, &go, 1); } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(127);  /* the parent gave up: nothing to report to */
}

/* A go-ahead byte from the parent with up to `max` descriptors attached; returns how many came.
 * `what` names them in errors. */
static int receive_fds(const struct clinux_container *c, int *fds, int max, const char *what) {
    char go;
    struct iovec vector = { .iov_base = &go, .iov_len = 1 };
    union { char buffer[CMSG_SPACE(sizeof(int) * CLINUX_MAX_IDMAPPED)]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.buffer,
                              .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)max) };
    ssize_t got;
    do { got = recvmsg(c->sync_fd, &message, MSG_CMSG_CLOEXEC); } while (got < 0 && errno == EINTR);
    if (got != 1) _exit(127);  /* the parent gave up */
    int count = 0;
    for (struct cmsghdr *h = CMSG_FIRSTHDR(&message); h; h = CMSG_NXTHDR(&message, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
        count = (int)((h->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(fds, CMSG_DATA(h), (size_t)count * sizeof(int));
    }
    if (message.msg_flags & MSG_CTRUNC) { errno = EMSGSIZE; fail(c->error_fd, "recvmsg", what); }
    return count;
}

/* The second go-ahead: one byte with the cgroup files attached (see `cgroup_joins`). Writing "0"
 * moves this (single-threaded) process into each. */
static void join_cgroups(const struct clinux_container *c) {
    int fds[CLINUX_MAX_CGROUP_JOINS];
    int count = receive_fds(c, fds, CLINUX_MAX_CGROUP_JOINS, "cgroup files");
    for (int i = 0; i < count; i++) {
        if (write(fds[i], "0", 1) != 1) fail(c->error_fd, "write 0", i < c->cgroup_join_count ? c->cgroup_joins[i] : "a cgroup file");
        close(fds[i]);
    }
}

/* Closes every descriptor from 3 up except `keep` (sorted, -1s ignored): the child was cloned
 * with copies of everything its parent had open, including the write ends of its own go-ahead
 * pipes, and would never see EOF on them if its parent died. */
static void close_all_except(int *keep, int count) {
    for (int i = 1; i < count; i++)
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) { int t = keep[j]; keep[j] = keep[j - 1]; keep[j - 1] = t; }
    unsigned int low = 3;
    for (int i = 0; i <= count; i++) {
        unsigned int high = i < count ? (unsigned int)keep[i] : ~0U;
        if (i < count && keep[i] < 3) continue;
        if (high > low) {
            unsigned int last = i < count ? high - 1 : ~0U;
            if (syscall(SYS_close_range, low, last, 0) != 0) {
                for (unsigned int fd = low; fd <= last && fd < 4096; fd++) close((int)fd);
            }
        }
        if (i < count) low = high + 1;
    }
}

/* The container's first process: join, wait for the parent, build the root, wait, exec. */
static int child_main(void *argument) {
    const struct clinux_container *c = argument;
    int keep[] = { c->sync_fd, c->ready_fd, c->exec_fd, c->error_fd, c->process.console_fd };
    close_all_except(keep, (int)(sizeof keep / sizeof keep[0]));
    int in_user_namespace = (c->clone_flags & CLONE_NEWUSER) != 0;
    for (int i = 0; i < c->join_count; i++) {
        int fd = open(c->joins[i].path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) fail(c->error_fd, "open", c->joins[i].path);
        if (setns(fd, c->joins[i].type) != 0) fail(c->error_fd, "setns", c->joins[i].path);
        close(fd);
        if (c->joins[i].type == CLONE_NEWUSER) in_user_namespace = 1;
    }
    /* The first go-ahead; with an idmapped root, the layers' mounts come with it. */
    int lowers[CLINUX_MAX_IDMAPPED];
    if (c->idmapped_lower_count > 0) {
        if (receive_fds(c, lowers, CLINUX_MAX_IDMAPPED, "the image's layers") != c->idmapped_lower_count) {
            errno = EPROTO;
            fail(c->error_fd, "recvmsg", "the image's layers (fewer than announced)");
        }
    } else {
        await(c->sync_fd);
    }
    umask(0);
    /* The namespaces clone left to us (see CLINUX_UNSHARED_LATER): made here, after the joins
     * (owned by a joined user namespace, as with runc) and while the parent makes our cgroups. */
    int later = c->clone_flags & CLINUX_UNSHARED_LATER;
    if (later && unshare(later) != 0) fail(c->error_fd, "unshare", "CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS (those asked for)");

    /* Ids: root in the container (with a new user namespace, the parent has mapped 0 by now). */
    if (in_user_namespace) {
        if (setresgid(0, 0, 0) != 0) fail(c->error_fd, "setresgid", "0");
        if (setresuid(0, 0, 0) != 0) fail(c->error_fd, "setresuid", "0");
    }
    if (c->hostname && sethostname(c->hostname, strlen(c->hostname)) != 0) fail(c->error_fd, "sethostname", c->hostname);
    if (c->domainname && setdomainname(c->domainname, strlen(c->domainname)) != 0) fail(c->error_fd, "setdomainname", c->domainname);

    /* Nothing we mount may propagate back to the host: every mount private, or, for
     * rootfsPropagation (r)slave, a slave that still receives the host's. A shared or
     * unbindable root is made so once it is the root (below): a shared one then has a peer
     * group of its own, never the host's. */
    unsigned long propagation = (c->root_propagation & MS_SLAVE) ? c->root_propagation : (MS_REC | MS_PRIVATE);
    if (!c->host_mount_namespace && mount(NULL, "/", NULL, propagation, NULL) != 0) fail(c->error_fd, "mount --make-r*", "/");

    if (c->host_mount_namespace) {
        /* The host's mount namespace: its mounts are not ours to change. */
    } else if (c->lower || c->idmapped_lower_count > 0) {
        char options[4096], lower[4096];
        const char *upper = c->upper, *work = c->work;
        char scratch_upper[4096], scratch_work[4096];
        if (!upper || c->idmapped_lower_count > 0) {
            /* A scratch tmpfs in this mount namespace only, under the overlay at the same point:
             * the container's own layer (when it has none on the host) and the points the
             * idmapped layers are attached at. Nothing is made on the host; it ends with the
             * namespace. */
            if (mount("tmpfs", c->root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755") != 0) fail(c->error_fd, "mount tmpfs", c->root);
        }
        if (!upper) {
            snprintf(scratch_upper, sizeof scratch_upper, "%s/upper", c->root);
            snprintf(scratch_work, sizeof scratch_work, "%s/work", c->root);
            if (mkdir(scratch_upper, 0755) != 0) fail(c->error_fd, "mkdir", scratch_upper);
            if (mkdir(scratch_work, 0755) != 0) fail(c->error_fd, "mkdir", scratch_work);
            upper = scratch_upper;
            work = scratch_work;
            /* The parent measures what the container wrote once it has ended (the namespace, and
             * with it this tmpfs, is gone by then; a descriptor in the parent keeps it): the tmpfs
             * goes to it now, queued on the sync socket until it asks. Only a measurement. */
            int scratch = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (scratch >= 0) {
                clinux_send_fds(c->sync_fd, &scratch, 1, 'u');
                close(scratch);
            }
        }
        if (c->idmapped_lower_count > 0) {
            /* lowerdir=ROOT/l/0:ROOT/l/1:... (top first), each an idmapped layer moved here. */
            size_t used = 0;
            char point[4096];
            snprintf(point, sizeof point, "%s/l", c->root);
            if (mkdir(point, 0755) != 0) fail(c->error_fd, "mkdir", point);
            for (int i = 0; i < c->idmapped_lower_count; i++) {
                snprintf(point, sizeof point, "%s/l/%d", c->root, i);
                if (mkdir(point, 0755) != 0) fail(c->error_fd, "mkdir", point);
                if (syscall(SYS_move_mount, lowers[i], "", AT_FDCWD, point, MOVE_MOUNT_F_EMPTY_PATH) != 0) fail(c->error_fd, "move_mount (an idmapped layer)", point);
                close(lowers[i]);
                int wrote = snprintf(lower + used, sizeof lower - used, "%s%s", i ? ":" : "", point);
                if (wrote < 0 || (size_t)wrote >= sizeof lower - used) { errno = E2BIG; fail(c->error_fd, "lowerdir", "too many layers for overlay's options"); }
                used += (size_t)wrote;
            }
        } else if ((size_t)snprintf(lower, sizeof lower, "%s", c->lower) >= sizeof lower) {
            errno = E2BIG;
            fail(c->error_fd, "lowerdir", c->lower);
        }
        snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s%s", lower, upper, work,
                 c->overlay_userxattr ? ",userxattr" : "");
        if (mount("overlay", c->root, "overlay", 0, options) != 0) fail(c->error_fd, "mount overlay", c->root);
    } else if (mount(c->root, c->root, NULL, MS_BIND | MS_REC, NULL) != 0) {
        fail(c->error_fd, "mount --rbind", c->root);
    }

    /* Every path below is the container's, resolved inside the root (inroot.c). */
    int root_fd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) fail(c->error_fd, "open", c->root);
    int early = c->mount_count - (c->ready_fd >= 0 ? c->late_mount_count : 0);
    make_mounts(c, root_fd, 0, early);
    for (int i = 0; i < c->device_count; i++) make_device(c, root_fd, in_user_namespace, &c->devices[i]);
    for (int i = 0; i < c->symlink_count; i++) {
        char name[NAME_MAX + 1];
        const char *path = c->symlinks[2 * i + 1];
        int parent = clinux_parent_in_root(root_fd, path, name, sizeof name);
        if (parent < 0) fail(c->error_fd, "resolve in root", path);
        if (symlinkat(c->symlinks[2 * i], parent, name) != 0 && errno != EEXIST) fail(c->error_fd, "symlink", path);
        close(parent);
    }
    close(root_fd);
    for (int i = 0; i < c->sysctl_count; i++) write_sysctl(c->error_fd, c->sysctls[2 * i], c->sysctls[2 * i + 1]);

    /* The parent has made our cgroups meanwhile (the late mounts bind them): we join them, then
     * wait while it runs the prestart, createRuntime and createContainer hooks, if any. */
    if (c->ready_fd >= 0) {
        report(c, 'h');
        join_cgroups(c);
        if (c->join_report) {
            report(c, 'j');
            await(c->sync_fd);
        }
        /* In our cgroups now: a cgroup namespace, rooted at the cgroup it is made in, exists from
         * create on, as with runc. */
        if ((c->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) != 0) fail(c->error_fd, "unshare", "CLONE_NEWCGROUP");
        if (early < c->mount_count) {
            root_fd = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (root_fd < 0) fail(c->error_fd, "open", c->root);
            make_mounts(c, root_fd, early, c->mount_count);
            close(root_fd);
        }
    }

    if (c->make_cwd && c->process.cwd) {
        int root = open(c->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int made = root < 0 ? -1 : clinux_mkdir_in_root(root, c->process.cwd, 0755);
        if (made < 0) fail(c->error_fd, "mkdir (process.cwd)", c->process.cwd);
        close(made);
        close(root);
    }
    if (chdir(c->root) != 0) fail(c->error_fd, "chdir", c->root);
    if (c->host_mount_namespace) {
        if (chroot(".") != 0) fail(c->error_fd, "chroot", c->root);
    } else if (c->no_pivot) {
        if (mount(c->root, "/", NULL, MS_MOVE, NULL) != 0) fail(c->error_fd, "mount --move", c->root);
        if (chroot(".") != 0) fail(c->error_fd, "chroot", c->root);
    } else {
        /* pivot_root(".", "."), then detach the old root stacked underneath (runc's way: no
         * temporary directory is needed inside a root that may be read-only). */
        if (syscall(SYS_pivot_root, ".", ".") != 0) fail(c->error_fd, "pivot_root", c->root);
        if (umount2(".", MNT_DETACH) != 0) fail(c->error_fd, "umount2", "old root");
    }
    if (chdir("/") != 0) fail(c->error_fd, "chdir", "/");

    for (int i = 0; i < c->masked_count; i++) {
        const char *path = c->masked_paths[i];
        struct stat info;
        if (stat(path, &info) != 0) continue;
        int r = S_ISDIR(info.st_mode)
            ? mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0")
            : mount("/dev/null", path, NULL, MS_BIND, NULL);
        if (r != 0) fail(c->error_fd, "mask", path);
    }
    for (int i = 0; i < c->readonly_count; i++) {
        const char *path = c->readonly_paths[i];
        if (access(path, F_OK) != 0) continue;
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) != 0) fail(c->error_fd, "mount --bind", path);
        if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) {
            fail(c->error_fd, "mount -o remount,ro", path);
        }
    }
    if (c->read_only_root && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) != 0) {
        fail(c->error_fd, "mount -o remount,ro", "/");
    }
    /* The root's own propagation last (an unbindable root could not be bound from above). */
    if ((c->root_propagation & (MS_SHARED | MS_UNBINDABLE | MS_PRIVATE)) && mount(NULL, "/", NULL, c->root_propagation, NULL) != 0) {
        fail(c->error_fd, "mount --make-*", "/ (rootfsPropagation)");
    }
    if (c->loopback_up) loopback_up(c->error_fd);

    /* At the entry point, in our cgroups. The go-ahead to exec comes at once for `tandem ctr
     * run`, at `start` for the OCI runtime. */
    apply_limits(&c->process, c->error_fd);
    set_security_labels(&c->process, c->error_fd);
    report(c, 'r');
    await(c->exec_fd);
    close(c->exec_fd);
    /* Without the reports (no ready_fd) the go-ahead to exec is the first sign we are in our cgroups. */
    if (c->ready_fd < 0 && (c->clone_flags & CLONE_NEWCGROUP) && unshare(CLONE_NEWCGROUP) != 0) fail(c->error_fd, "unshare", "CLONE_NEWCGROUP");
    become(&c->process, c->error_fd);
    return 127;
}

#define CHILD_STACK_SIZE (256 * 1024)

pid_t clinux_container_spawn(const struct clinux_container *c) {
    /* A private stack for the child; the parent unmaps its own copy of the mapping afterwards
     * (without CLONE_VM the child has its own copy of the whole address space). */
    void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -errno;
    /* Joining a pid namespace applies to children only: this thread enters it around clone. */
    int own_pid_ns = -1;
    if (c->pid_namespace) {
        int target = open(c->pid_namespace, O_RDONLY | O_CLOEXEC);
        if (target < 0) { int saved = errno; munmap(stack, CHILD_STACK_SIZE); return -saved; }
        own_pid_ns = open("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC);
        if (own_pid_ns < 0 || setns(target, CLONE_NEWPID) != 0) {
            int saved = errno;
            close(target);
            if (own_pid_ns >= 0) close(own_pid_ns);
            munmap(stack, CHILD_STACK_SIZE);
            return -saved;
        }
        close(target);
    }
    int flags = (c->clone_flags & ~(CLONE_NEWCGROUP | CLINUX_UNSHARED_LATER)) | SIGCHLD;
    pid_t pid = clone(child_main, (char *)stack + CHILD_STACK_SIZE, flags, (void *)c);
    int saved = errno;
    if (own_pid_ns >= 0) {
        setns(own_pid_ns, CLONE_NEWPID);
        close(own_pid_ns);
    }
    munmap(stack, CHILD_STACK_SIZE);
    return pid < 0 ? -saved : pid;
}

/* exec: the intermediate process joins, forks the process that execs, and relays its status. */
pid_t clinux_container_exec(pid_t target, const char *const *cgroup_files, int cgroup_count,
                            const struct clinux_process *p, int stdin_fd, int error_fd) {
    static const struct { const char *name; int type; } order[] = {
        { "user", CLONE_NEWUSER }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS }, { "net", CLONE_NEWNET },
        { "pid", CLONE_NEWPID }, { "cgroup", CLONE_NEWCGROUP }, { "mnt", CLONE_NEWNS },
    };
    pid_t pid = fork();
    if (pid != 0) return pid < 0 ? -errno : pid;

    /* In the intermediate (single-threaded) process. */
    for (int i = 0; i < cgroup_count; i++) {
        int fd = open(cgroup_files[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0) fail(error_fd, "open", cgroup_files[i]);
        if (write(fd, "0", 1) != 1) fail(error_fd, "write 0", cgroup_files[i]);
        close(fd);
    }
    /* Its root, for a container without a mount namespace of its own (chroot'ed only). */
    char root[64];
    snprintf(root, sizeof root, "/proc/%d/root", target);
    int root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) fail(error_fd, "open", root);
    int fds[7];
    for (int i = 0; i < 7; i++) {
        char ns[64], self[64];
        snprintf(ns, sizeof ns, "/proc/%d/ns/%s", target, order[i].name);
        snprintf(self, sizeof self, "/proc/self/ns/%s", order[i].name);
        struct stat theirs, ours;
        /* Only namespaces the container does not share with us (joining our own user ns fails). */
        if (stat(ns, &theirs) != 0) fail(error_fd, "stat", ns);
        if (stat(self, &ours) == 0 && ours.st_ino == theirs.st_ino && ours.st_dev == theirs.st_dev) { fds[i] = -1; continue; }
        fds[i] = open(ns, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0) fail(error_fd, "open", ns);
    }
    int shares_mounts = fds[6] < 0;
    for (int i = 0; i < 7; i++) {
        if (fds[i] < 0) continue;
        if (setns(fds[i], order[i].type) != 0) fail(error_fd, "setns", order[i].name);
        close(fds[i]);
    }
    if (shares_mounts) {
        /* Our own mount namespace: the container's root is a chroot in it. */
        if (fchdir(root_fd) != 0) fail(error_fd, "fchdir", root);
        if (chroot(".") != 0) fail(error_fd, "chroot", root);
    }
    close(root_fd);
    if (chdir("/") != 0) fail(error_fd, "chdir", "/");
    pid_t child = fork();
    if (child < 0) fail(error_fd, "fork", NULL);
    if (child == 0) {
        if (stdin_fd >= 0 && dup2(stdin_fd, 0) < 0) fail(error_fd, "dup2", "stdin");
        apply_limits(p, error_fd);
        set_security_labels(p, error_fd);
        become(p, error_fd);
    }
    close(error_fd);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) { }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}
