#define _GNU_SOURCE
#include <sys/xattr.h>
#include <sys/sysmacros.h>
#include <linux/keyctl.h>
#include "clinux.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <sched.h>
#include <stdint.h>
#include <time.h>
#include <linux/userfaultfd.h>

int clinux_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int clinux_set_thread_name(pthread_t thread, const char *name) { return pthread_setname_np(thread, name); }

int clinux_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }
int clinux_signalfd(const sigset_t *mask) { return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK); }

int clinux_read_signal(int fd) {
    struct signalfd_siginfo info;
    return read(fd, &info, sizeof info) == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int clinux_thread_timer(int signo, uint64_t nanoseconds, intptr_t *timer) {
    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_THREAD_ID;
    event.sigev_signo = signo;
    event._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    timer_t made;
    if (timer_create(CLOCK_MONOTONIC, &event, &made) != 0) return -1;
    if (nanoseconds == 0) nanoseconds = 1;  /* an it_value of zero disarms */
    struct itimerspec when;
    memset(&when, 0, sizeof when);
    when.it_value.tv_sec = (time_t)(nanoseconds / 1000000000u);
    when.it_value.tv_nsec = (long)(nanoseconds % 1000000000u);
    if (timer_settime(made, 0, &when, NULL) != 0) {
        int saved = errno;
        timer_delete(made);
        errno = saved;
        return -1;
    }
    *timer = (intptr_t)made;
    return 0;
}

int clinux_timer_delete(intptr_t timer) { return timer_delete((timer_t)timer); }

long clinux_filesystem_magic(const char *path) {
    struct statfs info;
    return statfs(path, &info) == 0 ? (long)info.f_type : -1;
}

int clinux_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}
long clinux_user_key_add(const char *description, const char *payload, unsigned timeout_seconds) {
    long key = syscall(SYS_add_key, "user", description, payload, strlen(payload), KEY_SPEC_USER_KEYRING);
    if (key < 0) return -errno;
    if (syscall(SYS_keyctl, KEYCTL_SETPERM, key, 0x3f0b0000) < 0 || syscall(SYS_keyctl, KEYCTL_SET_TIMEOUT, key, timeout_seconds) < 0) {
        int saved = errno;
        syscall(SYS_keyctl, KEYCTL_INVALIDATE, key);
        return -saved;
    }
    return key;
}

int clinux_user_key_remove(long key) {
    return syscall(SYS_keyctl, KEYCTL_INVALIDATE, key) == 0 ? 0 : -errno;
}

const int clinux_posix_spawn_setsid = POSIX_SPAWN_SETSID;

int clinux_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

pid_t clinux_spawn_tied(const char *path, char *const argv[], char *const envp[], int output_fd, int keep_fd) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { int saved = errno; close(report[0]); close(report[1]); return -saved; }
    if (pid == 0) {
        int error = 0;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) error = errno;
        else if (getppid() != parent) error = ESRCH;  /* the parent died before the line above */
        /* Out of the way of 0-3 first: output_fd or keep_fd may be one of them. */
        int output = error ? -1 : fcntl(output_fd, F_DUPFD_CLOEXEC, 10);
        int keep = keep_fd >= 0 && !error ? fcntl(keep_fd, F_DUPFD_CLOEXEC, 10) : -1;
        int null = error ? -1 : open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (!error && (output < 0 || null < 0 || (keep_fd >= 0 && keep < 0))) error = errno;
        if (!error && (dup2(null, 0) < 0 || dup2(output, 1) < 0 || dup2(output, 2) < 0 || (keep >= 0 && dup2(keep, 3) < 0))) error = errno;
        if (!error) {
            /* Everything above what it gets closes at exec (the report pipe still works until then). */
            unsigned int first = keep >= 0 ? 4 : 3;
            if (syscall(SYS_close_range, first, ~0U, 4 /* CLOSE_RANGE_CLOEXEC */) != 0) {
                for (int fd = (int)first; fd < 4096; fd++) if (fd != report[1]) fcntl(fd, F_SETFD, FD_CLOEXEC);
            }
            sigset_t none;
            sigemptyset(&none);
            for (int signal = 1; signal < NSIG; signal++) {
                if (signal == SIGKILL || signal == SIGSTOP) continue;
                struct sigaction action = { .sa_handler = SIG_DFL };
                sigaction(signal, &action, NULL);
            }
            sigprocmask(SIG_SETMASK, &none, NULL);
            execve(path, argv, envp);
            error = errno;
        }
        if (write(report[1], &error, sizeof error) != (ssize_t)sizeof error) { /* the parent sees EOF, then our 127 */ }
        _exit(127);
    }
    close(report[1]);
    int error = 0;
    ssize_t got;
    do { got = read(report[0], &error, sizeof error); } while (got < 0 && errno == EINTR);
    close(report[0]);
    if (got == (ssize_t)sizeof error) {
        waitpid(pid, NULL, 0);
        return -error;
    }
    return pid;
}

/* SCM_RIGHTS needs the CMSG_* macros, which Swift cannot import. */
int clinux_send_fd(int sock, int fd, const char *name) {
    char payload[256];
    size_t length = strlen(name);
    if (length >= sizeof payload) length = sizeof payload - 1;
    memcpy(payload, name, length);
    struct iovec vector = { .iov_base = payload, .iov_len = length ? length : 1 };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof control.buffer };
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(header), &fd, sizeof(int));
    return sendmsg(sock, &message, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

int clinux_send_fds(int sock, const int *fds, int count, char byte) {
    if (count < 0 || count > CLINUX_MAX_CGROUP_JOINS) return -EINVAL;
    struct iovec vector = { .iov_base = &byte, .iov_len = 1 };
    union { char buffer[CMSG_SPACE(CLINUX_MAX_CGROUP_JOINS * sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1 };
    if (count > 0) {
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE((size_t)count * sizeof(int));
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN((size_t)count * sizeof(int));
        memcpy(CMSG_DATA(header), fds, (size_t)count * sizeof(int));
    }
    ssize_t sent;
    do { sent = sendmsg(sock, &message, MSG_NOSIGNAL); } while (sent < 0 && errno == EINTR);
    return sent == 1 ? 0 : -errno;
}

int clinux_seqpacket_pair(int fds[2]) { return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds); }

static int receive_one_fd(int sock, int flags) {
    char payload[256];
    struct iovec vector = { .iov_base = payload, .iov_len = sizeof payload };
    union { char buffer[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr message = { .msg_iov = &vector, .msg_iovlen = 1, .msg_control = control.buffer, .msg_controllen = sizeof control.buffer };
    if (recvmsg(sock, &message, MSG_CMSG_CLOEXEC | flags) < 0) return -errno;
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    if (!header || header->cmsg_type != SCM_RIGHTS) return -EBADMSG;
    int fd;
    memcpy(&fd, CMSG_DATA(header), sizeof(int));
    return fd;
}

int clinux_receive_fd(int sock) { return receive_one_fd(sock, 0); }

int clinux_take_fd(int sock) { return receive_one_fd(sock, MSG_DONTWAIT); }

int clinux_open_pty(int *master, int *slave, char *name, size_t name_size, unsigned short rows, unsigned short columns) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0) return -errno;
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, name_size) != 0) { int saved = errno; close(m); return -saved; }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) { int saved = errno; close(m); return -saved; }
    if (rows && columns) {
        struct winsize size = { .ws_row = rows, .ws_col = columns };
        ioctl(m, TIOCSWINSZ, &size);
    }
    *master = m;
    *slave = s;
    return 0;
}


int clinux_lsetxattr(const char *path, const char *name, const void *value, size_t size) {
    return lsetxattr(path, name, value, size, 0);
}

int clinux_fsetxattr(int fd, const char *name, const void *value, size_t size) {
    return fsetxattr(fd, name, value, size, 0);
}

int clinux_overlay_opaque(int fd) {
    char value[8];
    ssize_t length = fgetxattr(fd, "trusted.overlay.opaque", value, sizeof value);
    return length >= 1 ? (unsigned char)value[0] : -1;
}

dev_t clinux_makedev(unsigned int major, unsigned int minor) { return makedev(major, minor); }

/* The new mount API, where the C library has no names for it yet (glibc before 2.36). */
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef OPEN_TREE_CLOEXEC
#define OPEN_TREE_CLOEXEC O_CLOEXEC
#endif
#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#endif
#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
struct mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

int clinux_idmapped_tree(const char *path, int userns_fd) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (tree < 0) return -errno;
    struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY, .userns_fd = (unsigned long long)userns_fd };
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
        int error = errno;
        close(tree);
        return -error;
    }
    return tree;
}

int clinux_tap_open(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    snprintf(request.ifr_name, IFNAMSIZ, "%s", name);
    int header = 12;
    if (ioctl(fd, TUNSETIFF, &request) != 0 || ioctl(fd, TUNSETVNETHDRSZ, &header) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int clinux_tap_offload(int fd, unsigned int flags) { return ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) == 0 ? 0 : -errno; }

int clinux_interface_up(const char *name, const char *address, int prefix) {
    if (prefix < 0 || prefix > 32 || strlen(name) >= IFNAMSIZ) return -EINVAL;
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -errno;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    snprintf(request.ifr_name, IFNAMSIZ, "%s", name);
    struct sockaddr_in *in = (struct sockaddr_in *)&request.ifr_addr;
    in->sin_family = AF_INET;
    int error = 0;
    if (inet_pton(AF_INET, address, &in->sin_addr) != 1) error = EINVAL;
    else if (ioctl(sock, SIOCSIFADDR, &request) != 0) error = errno;
    if (!error) {
        in->sin_addr.s_addr = prefix == 0 ? 0 : htonl(0xffffffffu << (32 - prefix));
        if (ioctl(sock, SIOCSIFNETMASK, &request) != 0) error = errno;
    }
    if (!error && ioctl(sock, SIOCGIFFLAGS, &request) != 0) error = errno;
    if (!error) {
        request.ifr_flags |= IFF_UP;
        if (ioctl(sock, SIOCSIFFLAGS, &request) != 0) error = errno;
    }
    close(sock);
    return -error;
}

int clinux_epoll_create(void) {
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int clinux_epoll_watch(int epoll_fd, int fd, unsigned int events, unsigned long long token, int modify) {
    struct epoll_event event = { .events = events, .data.u64 = token };
    return epoll_ctl(epoll_fd, modify ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

int clinux_epoll_forget(int epoll_fd, int fd) { return epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, NULL) == 0 ? 0 : -errno; }

int clinux_epoll_ready(int epoll_fd, unsigned long long *tokens, unsigned int *events, int count) {
    struct epoll_event ready[64];
    if (count > 64) count = 64;
    int n = epoll_wait(epoll_fd, ready, count, 0);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}

static int unix_address(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof address->sun_path) return -ENAMETOOLONG;
    strcpy(address->sun_path, path);
    return 0;
}

int clinux_unix_listen(const char *path, int backlog) {
    struct sockaddr_un address;
    int error = unix_address(path, &address);
    if (error) return error;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, backlog) != 0) {
        error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int clinux_unix_connect(const char *path) {
    struct sockaddr_un address;
    int error = unix_address(path, &address);
    if (error) return error;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int clinux_unix_accept(int listener) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* The holder's whole life (see clinux_exit_leaving_teardown): it shares the parent's memory, so it
 * calls nothing that writes memory but the kernel (prctl and getppid cannot fail; pause never
 * returns with every signal blocked). */
static int teardown_holder(void *parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != (pid_t)(intptr_t)parent) return 0;  /* the parent exited before the line above */
    for (;;) pause();
}

void clinux_exit_leaving_teardown(int status, const int *keep, int keep_count) {
    /* The holder's stack: it lives in the shared memory until the holder is gone. */
    static char stack[16384] __attribute__((aligned(64)));
    fflush(NULL);  /* _exit below does not flush C's stdio buffers */
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, NULL);  /* the holder inherits the mask; this thread exits next */
    pid_t holder = clone(teardown_holder, stack + sizeof stack, CLONE_VM | CLONE_FILES | SIGCHLD, (void *)(intptr_t)getpid());
    if (holder > 0) {
        /* Close everything but `keep`, lowest first, in the gaps between the kept descriptors. */
        unsigned int next = 0;
        for (;;) {
            int lowest = -1;
            for (int index = 0; index < keep_count; index++) {
                if (keep[index] >= (int)next && (lowest < 0 || keep[index] < lowest)) lowest = keep[index];
            }
            if (lowest < 0) { syscall(SYS_close_range, next, ~0U, 0); break; }
            if ((unsigned int)lowest > next) syscall(SYS_close_range, next, (unsigned int)lowest - 1, 0);
            next = (unsigned int)lowest + 1;
        }
    }
    _exit(status);
}

int clinux_uffd_open(void) {
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
    if (uffd < 0) return -errno;
    struct uffdio_api api = { .api = UFFD_API, .features = 0 };
    if (ioctl(uffd, UFFDIO_API, &api) != 0) {
        int error = errno;
        close(uffd);
        return -error;
    }
    return uffd;
}

int clinux_uffd_register(int uffd, void *address, size_t length) {
    struct uffdio_register range = { .range = { .start = (uintptr_t)address, .len = length }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    return ioctl(uffd, UFFDIO_REGISTER, &range) == 0 ? 0 : -errno;
}

int clinux_uffd_copy(int uffd, void *destination, const void *source, size_t length) {
    struct uffdio_copy copy = { .dst = (uintptr_t)destination, .src = (uintptr_t)source, .len = length, .mode = 0 };
    return ioctl(uffd, UFFDIO_COPY, &copy) == 0 ? 0 : -errno;
}
