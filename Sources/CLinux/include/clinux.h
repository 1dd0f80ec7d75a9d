/*
 * clinux.h — Linux calls Swift cannot reach directly: the GNU-only declarations (pipe2,
 * pthread_setname_np) hidden behind _GNU_SOURCE, and variadic calls (prctl). Later the container
 * runtime's clone/exec trampoline lives here too, because Swift is not safe between clone and exec.
 */
#ifndef CLINUX_H
#define CLINUX_H

#include <pthread.h>
#include <stdint.h>
#include <spawn.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include "clinux_container.h"

/** O_PATH (GNU-only in <fcntl.h>): a descriptor that names a file without opening it (the image
 * store's layer unpacker walks a layer's directories with it). */
#define CLINUX_O_PATH 010000000
/** O_TMPFILE (GNU-only too; __O_TMPFILE | O_DIRECTORY): an unnamed file in a directory, gone when
 * closed, so a killed import leaves nothing (a compressed archive is decompressed into one). One
 * literal: Swift imports no macro that is an expression. */
#define CLINUX_O_TMPFILE 020200000
/** An idmapped, read-only, detached copy of the mount at `path` (open_tree OPEN_TREE_CLONE, then
 * mount_setattr MOUNT_ATTR_IDMAP with the user namespace `userns_fd`): a file owned on disk by
 * host id N shows as owned by whatever that namespace maps N to — host root's image layers as the
 * container's root's. Called by the parent (host root); the child attaches it (move_mount). No
 * glibc wrapper on older systems and constants Swift cannot import: hence C. Returns the mount's
 * descriptor (close-on-exec), or -errno. */
int clinux_idmapped_tree(const char *path, int userns_fd);
/** lsetxattr: <sys/xattr.h> is not in Swift's Glibc module. Sets an extended attribute on `path`
 * itself (a symlink is not followed). */
int clinux_lsetxattr(const char *path, const char *name, const void *value, size_t size);
/** fsetxattr: the same, on an open file. */
int clinux_fsetxattr(int fd, const char *name, const void *value, size_t size);
/** fgetxattr(fd, "trusted.overlay.opaque"): the first byte of the value (overlay's opaque marker is "y"), or -1 when unset. */
int clinux_overlay_opaque(int fd);
/** makedev is a macro: the device number of major:minor (a layer's device nodes, overlay's 0:0 whiteouts). */
dev_t clinux_makedev(unsigned int major, unsigned int minor);

/** Opens the tap interface `name` (creating it, or attaching to a persistent one of that name):
 * /dev/net/tun with TUNSETIFF (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR: each frame led by a 12-byte
 * virtio_net_hdr, TUNSETVNETHDRSZ), close-on-exec and non-blocking. A tap made here goes when its
 * last descriptor closes, also when the VMM is killed. TUNSETIFF and struct ifreq are macros and
 * a union: hence C. Returns the descriptor, or -errno (EBUSY: another process holds that name). */
int clinux_tap_open(const char *name);
/** TUNSETOFFLOAD: which offloaded frames the tap may hand us (TUN_F_CSUM 1, TUN_F_TSO4 2,
 * TUN_F_TSO6 4): what the guest's driver accepted. Returns 0, or -errno. */
int clinux_tap_offload(int fd, unsigned int flags);
/** Gives interface `name` the IPv4 address `address` with `prefix` bits of netmask and brings it
 * up (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS with IFF_UP). Returns 0, or -errno. */
int clinux_interface_up(const char *name, const char *address, int prefix);

/** epoll for the vsock device, which watches a set of host sockets that changes as connections
 * come and go: <sys/epoll.h> is not in Swift's Glibc module, and struct epoll_event is packed.
 * The device thread polls the epoll descriptor like any other. Event bits as epoll's. */
#define CLINUX_EPOLLIN 0x001u
#define CLINUX_EPOLLOUT 0x004u
#define CLINUX_EPOLLERR 0x008u
#define CLINUX_EPOLLHUP 0x010u
#define CLINUX_EPOLLRDHUP 0x2000u
#define CLINUX_EPOLLET 0x80000000u
/** epoll_create1(EPOLL_CLOEXEC): the descriptor, or -errno. */
int clinux_epoll_create(void);
/** Adds `fd` to `epoll_fd` (or changes it, with `modify`) with `events` and `token` as its data.
 * Returns 0, or -errno. */
int clinux_epoll_watch(int epoll_fd, int fd, unsigned int events, unsigned long long token, int modify);
/** Removes `fd` from `epoll_fd`. Returns 0, or -errno. */
int clinux_epoll_forget(int epoll_fd, int fd);
/** epoll_wait without waiting: up to `count` ready descriptors as (token, events) pairs.
 * Returns how many, or -errno. */
int clinux_epoll_ready(int epoll_fd, unsigned long long *tokens, unsigned int *events, int count);

/** A Unix stream socket listening at `path` (bind, listen), non-blocking and close-on-exec.
 * struct sockaddr_un's path is a fixed char array Swift sees as a tuple: hence C. Returns the
 * descriptor, or -errno (ENAMETOOLONG: the path does not fit sun_path's 108 bytes). */
int clinux_unix_listen(const char *path, int backlog);
/** A Unix stream socket connected to `path`, non-blocking and close-on-exec (the connect itself
 * does not wait: a listener whose backlog is full answers EAGAIN). Returns it, or -errno. */
int clinux_unix_connect(const char *path);
/** accept4 (GNU-only) with SOCK_NONBLOCK | SOCK_CLOEXEC: the connection, or -errno. */
int clinux_unix_accept(int listener);

/** `tandem ctr run --net bridge` (network.c). The bridge ioctls: make the bridge `name`, delete it
 * (brought down first), attach `interface` to `bridge` and bring it up. 0, or -errno. */
int clinux_bridge_add(const char *name);
int clinux_bridge_delete(const char *name);
int clinux_bridge_attach(const char *bridge, const char *interface);
/** Takes `interface` off `bridge` (SIOCBRDELIF). 0, or -errno (-ENODEV: it is gone already). */
int clinux_bridge_detach(const char *bridge, const char *interface);
/** A veth pair: `host_name` here, its peer `peer_name` made straight in the network namespace of
 * process `peer_pid` (rtnetlink RTM_NEWLINK; a name taken here does not matter there). 0, or
 * -errno (EEXIST: `host_name` exists). */
int clinux_veth_create(const char *host_name, const char *peer_name, pid_t peer_pid);
/** In the network namespace of process `pid` (a thread setns()es there): gives `name`
 * `address`/`prefix`, brings it up, and adds a default route through `gateway` (NULL: none).
 * 0, or -errno. */
int clinux_netns_interface_up(pid_t pid, const char *name, const char *address, int prefix, const char *gateway);
/** Deletes the host's neighbour (ARP) entry for IPv4 `address` on `interface` (RTM_DELNEIGH):
 * a bridge address leased again must not be sent to its last holder's MAC. 0, or -errno
 * (-ENOENT: there was none). */
int clinux_neighbour_forget(const char *interface, const char *address);
/** Deletes every IPv4 connection-tracking entry of `protocol` (IPPROTO_TCP or IPPROTO_UDP) whose
 * original destination port is `port` (ctnetlink: a dump, then a delete per match). A published
 * UDP port needs it when it appears and goes: a flow that began before (no NAT) or with the last
 * container (DNAT to an address now gone) keeps its NAT decision while its client keeps sending.
 * The number deleted, or -errno. */
int clinux_conntrack_forget(int protocol, uint16_t port);

/** pipe2(fds, O_CLOEXEC): a pipe whose ends do not leak into spawned programs. */
int clinux_pipe_cloexec(int fds[2]);
/** pthread_setname_np: names a thread as `ps -L` and `top -H` show it (15 characters). */
int clinux_set_thread_name(pthread_t thread, const char *name);

/** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): a counter one thread writes to wake another's poll(). */
int clinux_eventfd(void);
/** signalfd for `mask` (CLOEXEC, NONBLOCK): blocked signals become readable records. */
int clinux_signalfd(const sigset_t *mask);
/** Reads one record from a signalfd; returns the signal number, or -1. */
int clinux_read_signal(int fd);
/** A one-shot CLOCK_MONOTONIC timer that sends `signo` to the calling thread after `nanoseconds`
 * (timer_create with SIGEV_THREAD_ID: Swift cannot fill struct sigevent's union). Sets *timer to
 * its id — an integer, since glibc's timer_t for the first timer is a null pointer; returns 0 or -1
 * with errno. */
int clinux_thread_timer(int signo, uint64_t nanoseconds, intptr_t *timer);
/** timer_delete for a timer of clinux_thread_timer. */
int clinux_timer_delete(intptr_t timer);
/** statfs(path)->f_type, the file system's magic number (linux/magic.h), or -1. */
long clinux_filesystem_magic(const char *path);

/** POSIX_SPAWN_SETSID (a GNU extension Swift cannot see): the spawned process leads a new session. */
extern const int clinux_posix_spawn_setsid;

/** posix_spawn_file_actions_addclosefrom_np (GNU): the spawned program gets no descriptor from
 * `lowest` up — a detached monitor must not keep its caller's pipes open. */
int clinux_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

/** Starts `path` (argv, envp) as a child that dies with us: PR_SET_PDEATHSIG SIGKILL, set before
 * exec and checked against a parent already gone — a hypervisor Tandem runs (QEMU for `tandem vm
 * run --backend qemu`) must not outlive a SIGKILLed tandem with its tap and guest. Its stdin is
 * /dev/null, `output_fd` its stdout and stderr, `keep_fd` (or -1) its descriptor 3, nothing else
 * open; signal dispositions default, mask empty. fork + exec in C: no Swift may run in the child.
 * Returns its pid, or -errno (an exec failure too, read from a close-on-exec pipe). */
pid_t clinux_spawn_tied(const char *path, char *const argv[], char *const envp[], int output_fd, int keep_fd);

/** pidfd_open(pid, 0): a descriptor that becomes readable when `pid` exits (Linux 5.3+), or -1. */
int clinux_pidfd_open(pid_t pid);

/** One OCI device rule: type 'a', 'c' or 'b'; major/minor -1 for any; access bits 1 mknod, 2 read, 4 write. */
struct clinux_device_rule { int allow; char type; long long major, minor; int access; };

/** cgroup v2 device rules: an eBPF program (last matching rule wins, no match allows) attached to
 * the cgroup directory `cgroup`. Returns 0, or -errno with the failing step in `error`. */
int clinux_device_filter_attach(const char *cgroup, const struct clinux_device_rule *rules, int count,
                                char *error, size_t error_size);

/** Sends `fd` over the unix socket `sock` (SCM_RIGHTS) with `name` as the payload (runc's console
 * socket protocol: the pty master, named by its path). Returns 0 or -errno. */
int clinux_send_fd(int sock, int fd, const char *name);
/** Sends the byte `byte` with `count` descriptors attached (SCM_RIGHTS, at most
 * CLINUX_MAX_CGROUP_JOINS): a container's go-ahead carrying the cgroup files it joins. 0 or -errno. */
int clinux_send_fds(int sock, const int *fds, int count, char byte);
/** A descriptor already queued on `sock`, without waiting (MSG_DONTWAIT): -EAGAIN when none is.
 * The parent takes the scratch layer the child queued (container.c) this way. */
int clinux_take_fd(int sock);
/** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): a go-ahead channel that keeps message
 * boundaries and can carry descriptors. */
int clinux_seqpacket_pair(int fds[2]);
/** Receives one descriptor sent with SCM_RIGHTS; returns it (close-on-exec) or -errno. */
int clinux_receive_fd(int sock);
/** A new pseudo-terminal pair (both close-on-exec), the slave's path in `name`, sized when rows and
 * columns are given. Returns 0 or -errno. */
int clinux_open_pty(int *master, int *slave, char *name, size_t name_size, unsigned short rows, unsigned short columns);

/* Paths inside a container's root (inroot.c): resolved as if `root_fd` were "/", so a symlink or
 * ".." in a hostile root file system never leads outside it. Each returns a descriptor (close-on-exec)
 * or -1 with errno, and is safe between clone and exec. */

/** openat2(root_fd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS); where the kernel has no
 * openat2, clinux_walk_in_root. */
int clinux_open_in_root(int root_fd, const char *path, int flags);
/** The same without openat2: one component at a time with O_NOFOLLOW, symlinks resolved here
 * (absolute ones from the root, at most 40), ".." never above the root. Exported for its tests. */
int clinux_walk_in_root(int root_fd, const char *path, int flags);
/** mkdir -p inside the root; an O_PATH descriptor of the directory. */
int clinux_mkdir_in_root(int root_fd, const char *path, mode_t mode);
/** The file at `path` inside the root, created (O_EXCL | O_NOFOLLOW, parents made) if missing: an
 * O_PATH descriptor to mount a file on. */
int clinux_file_in_root(int root_fd, const char *path, mode_t mode);
/** The parent directory of `path` inside the root (made if missing), and its last component in `name`. */
int clinux_parent_in_root(int root_fd, const char *path, char *name, size_t name_size);
/** fstat of `path` inside the root (symlinks followed inside it). Returns 0 or -1 with errno. */
int clinux_stat_in_root(int root_fd, const char *path, struct stat *info);
/** "/proc/self/fd/N": what mount(2) is given to mount on the file a descriptor holds. */
void clinux_fd_path(int fd, char *out, size_t size);

/** add_key("user", description, payload) in the calling user's keyring, readable and searchable by
 * every process of that uid (permissions 0x3f0b0000), gone after `timeout_seconds` even if the
 * caller is killed. The bench's host canary: a process that finds it shares the host's kernel
 * keyring. (add_key and keyctl have no glibc wrapper; keyctl is variadic.) Returns the key id or -errno. */
long clinux_user_key_add(const char *description, const char *payload, unsigned timeout_seconds);
/** keyctl(KEYCTL_INVALIDATE, key): removes the key at once. Returns 0 or -errno. */
int clinux_user_key_remove(long key);

/** Ends this process with `status` at once, leaving the kernel's teardown of what it holds — a
 * KVM VM's destruction, the unmapping of guest RAM — to a holder process, so whoever waits for the
 * status does not wait for the teardown (about 2 ms for a tiny microVM on this host). The holder is
 * cloned sharing this process's memory and descriptor table (CLONE_VM | CLONE_FILES: no copy, so
 * about as cheap as a thread), dies with its parent (PR_SET_PDEATHSIG SIGKILL, checked against a
 * parent already gone) and runs no other code: its exit then drops the last references, and the
 * kernel tears down there. Before exiting, every descriptor but the `keep_count` in `keep` (the
 * KVM ones) is closed, in the shared table, so pipes and files see their end at the status, not
 * after the teardown. Signals are blocked in the holder (SIGKILL cannot be). If the clone fails the
 * process just exits, tearing down itself. C: nothing may run in the holder but system calls. */
__attribute__((noreturn)) void clinux_exit_leaving_teardown(int status, const int *keep, int keep_count);

/** A userfaultfd (CLOEXEC) with its API handshake done, for filling guest RAM after the guest
 * starts: pages of a registered range that nobody has filled yet make whoever touches them — a
 * vCPU in KVM_RUN included — wait until they are filled. (No glibc wrapper; the UFFDIO_* ioctl
 * numbers are macros Swift cannot import.) The fd, or -errno: -EPERM where the kernel allows
 * userfaultfd only to privileged processes (vm.unprivileged_userfaultfd=0). */
int clinux_uffd_open(void);
/** UFFDIO_REGISTER of [address, address + length) for missing pages (page-aligned). 0 or -errno. */
int clinux_uffd_register(int uffd, void *address, size_t length);
/** UFFDIO_COPY: fills [destination, destination + length) with `source`'s bytes and wakes whoever
 * waits on those pages (page-aligned, a page multiple). 0 or -errno (-EEXIST: already filled). */
int clinux_uffd_copy(int uffd, void *destination, const void *source, size_t length);

#endif
