/*
 * probe: what a workload can see of the machine it runs in — the isolation facts Tandem's report
 * compares across VMs and containers. One line, machine-readable:
 *
 *   TANDEM-PROBE pids=N max_pid=N hostname=H kernel=R boot_id=B mounts=N netifs=lo,eth0 blockdevs=vda,vdb
 *                uid_map=0:0:4294967295 cap_eff=HEX cpus=N mem_mib=N pid1=CMD
 *                macs=M,M host_procs=yes|no host_file=TEXT|none keyring=TEXT|none kcore=K sys_write=W
 *
 * The second line's facts say what of the host the workload can reach; the report decides what
 * is the host's by comparing them with the host's own values (docs/bench.md):
 *   macs        hardware addresses of its network interfaces other than loopback's
 *   host_procs  whether it can see a process named lab-time: the bench's stopwatch, which runs on
 *               the host as the launcher's parent (never inside a sandbox)
 *   host_file   the first line of the file at argv[1] (the bench puts a nonce in a file in its
 *               host temp directory), or none when it cannot be read
 *   keyring     the payload of the "user" key named by argv[2] (by default "tandem-host-canary")
 *               found from its user keyring (the bench adds one with the same nonce to root's),
 *               or none
 *   kcore       /proc/kcore: elf (kernel memory readable), masked (reads nothing), denied, absent
 *   sys_write   a /sys file opened for writing (nothing is written): yes, or why not (rofs,
 *               denied, absent)
 *
 * With argv[3] (a port) and argv[4] (the host's address on Tandem's bridge), a third group: what
 * it reaches of the host's network. The bench serves the nonce there from the host to anyone who
 * connects (docs/bench.md, "What a sandbox reaches over the network"):
 *   net_loopback  what 127.0.0.1:PORT answered: the host's service bound to its loopback only
 *   net_abstract  what the abstract Unix socket @argv[2] answered (abstract sockets belong to a
 *                 network namespace, not to the file system)
 *   net_bridge    what argv[4]:PORT answered: the host's service bound to its bridge address;
 *                 tried only along a route without a gateway (the address is local or on a link
 *                 of the sandbox), so nothing is ever sent off this machine; "unrouted" otherwise
 * Each is the nonce read, or none (refused, unreachable, timed out, nothing read).
 *
 * Values never contain spaces (a space inside becomes '_').
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <sys/un.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

static void clean(char *text) {
    for (char *p = text; *p; p++) {
        if (*p == '\n') { *p = 0; break; }
        if (isspace((unsigned char)*p)) *p = '_';
    }
}

static void read_line(const char *path, char *out, size_t size) {
    out[0] = 0;
    FILE *file = fopen(path, "r");
    if (!file) { snprintf(out, size, "unreadable"); return; }
    if (!fgets(out, (int)size, file)) snprintf(out, size, "empty");
    fclose(file);
    clean(out);
}

/* The MAC of interface `name` as aa:bb:..., or "" (loopback's is all zeros). */
static void mac_of(const char *name, char *out, size_t size) {
    out[0] = 0;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    if (strlen(name) >= sizeof request.ifr_name) { close(fd); return; }
    memcpy(request.ifr_name, name, strlen(name));
    if (ioctl(fd, SIOCGIFHWADDR, &request) == 0) {
        const unsigned char *b = (const unsigned char *)request.ifr_hwaddr.sa_data;
        if (b[0] | b[1] | b[2] | b[3] | b[4] | b[5])
            snprintf(out, size, "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
    }
    close(fd);
}

/* Whether a process whose comm is `name` is visible in /proc. */
static int process_visible(const char *name) {
    DIR *proc = opendir("/proc");
    int found = 0;
    for (struct dirent *entry; proc && !found && (entry = readdir(proc));) {
        if (atoi(entry->d_name) <= 0) continue;
        char path[300], comm[64];
        snprintf(path, sizeof path, "/proc/%.255s/comm", entry->d_name);
        read_line(path, comm, sizeof comm);
        found = strcmp(comm, name) == 0;
    }
    if (proc) closedir(proc);
    return found;
}

/* The payload of the user key `description` searched from the user keyring (raw syscalls: no
   libkeyutils in a static guest program), or "none". */
static void keyring_payload(const char *description, char *out, size_t size) {
    snprintf(out, size, "none");
    long key = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", description, 0);
    if (key < 0) return;
    char payload[128];
    long length = syscall(SYS_keyctl, KEYCTL_READ, key, payload, sizeof payload - 1);
    if (length <= 0 || length >= (long)sizeof payload) return;
    payload[length] = 0;
    snprintf(out, size, "%s", payload);
    clean(out);
}

/* The first line a stream socket's peer sends, after connect() to `address` succeeds within
   two seconds (a TCG guest is slow; the host answers at once), or "none". */
static void read_from(int fd, const struct sockaddr *address, socklen_t length, char *out, size_t size) {
    snprintf(out, size, "none");
    if (fd < 0) return;
    if (connect(fd, address, length) != 0 && errno != EINPROGRESS) { close(fd); return; }
    struct pollfd wait = {.fd = fd, .events = POLLIN};
    int error = 0;
    socklen_t error_length = sizeof error;
    char text[128];
    ssize_t got = 0;
    /* POLLIN comes after the connection is made and the peer wrote (or closed, or refused). */
    if (poll(&wait, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_length) == 0 && error == 0)
        got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0) return;
    text[got] = 0;
    snprintf(out, size, "%s", text);
    clean(out);
    if (!out[0]) snprintf(out, size, "none");
}

static void read_tcp(const char *address, int port, char *out, size_t size) {
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    snprintf(out, size, "none");
    if (inet_pton(AF_INET, address, &target.sin_addr) != 1) return;
    read_from(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), (struct sockaddr *)&target, sizeof target, out, size);
}

static void read_abstract(const char *name, char *out, size_t size) {
    struct sockaddr_un target = {.sun_family = AF_UNIX};
    size_t length = strlen(name);
    snprintf(out, size, "none");
    if (length == 0 || length >= sizeof target.sun_path - 1) return;
    memcpy(target.sun_path + 1, name, length);  /* sun_path[0] == 0: the abstract namespace */
    read_from(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), (struct sockaddr *)&target,
              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + length), out, size);
}

/* Whether `address` is reached without a gateway: a route in /proc/net/route (the main table:
   a local address's subnet is there too) whose gateway is 0 and whose mask is not 0 covers it.
   The default route (mask 0) never counts: it may lead off this machine. */
static int on_link(const char *address) {
    struct in_addr wanted;
    if (inet_pton(AF_INET, address, &wanted) != 1) return 0;
    FILE *routes = fopen("/proc/net/route", "r");
    char line[256];
    int found = 0;
    for (int n = 0; routes && !found && fgets(line, sizeof line, routes); n++) {
        char name[64];
        unsigned destination, gateway, flags, refs, use, metric, mask;
        if (n == 0 || sscanf(line, "%63s %x %x %x %u %u %u %x", name, &destination, &gateway, &flags, &refs, &use, &metric, &mask) != 8) continue;
        /* The file's numbers are in network byte order, like s_addr. */
        found = gateway == 0 && mask != 0 && (wanted.s_addr & mask) == destination;
    }
    if (routes) fclose(routes);
    return found;
}

/* /proc/kcore: "elf" when the kernel's memory image can be read. */
static const char *kcore_state(void) {
    int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? "absent" : "denied";
    unsigned char magic[4];
    ssize_t got = read(fd, magic, sizeof magic);
    close(fd);
    if (got == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' && magic[3] == 'F') return "elf";
    return got <= 0 ? (got == 0 ? "masked" : "denied") : "other";
}

/* Whether a kernel setting under /sys can be opened for writing (nothing is written). */
static const char *sys_write_state(void) {
    static const char *candidates[] = {"/sys/kernel/mm/transparent_hugepage/enabled", "/sys/kernel/profiling",
                                       "/sys/kernel/uevent_helper", "/sys/power/state"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        int fd = open(candidates[i], O_WRONLY | O_CLOEXEC);
        if (fd >= 0) { close(fd); return "yes"; }
        if (errno == ENOENT) continue;
        return errno == EROFS ? "rofs" : "denied";
    }
    return "absent";
}

int main(int argc, char **argv) {
    int pids = 0, max_pid = 0;
    DIR *proc = opendir("/proc");
    for (struct dirent *entry; proc && (entry = readdir(proc));) {
        int pid = atoi(entry->d_name);
        if (pid > 0) { pids++; if (pid > max_pid) max_pid = pid; }
    }
    if (proc) closedir(proc);

    char hostname[256] = "";
    gethostname(hostname, sizeof hostname);
    clean(hostname);
    struct utsname names;
    uname(&names);
    char boot_id[128], uid_map[128], line[512];
    read_line("/proc/sys/kernel/random/boot_id", boot_id, sizeof boot_id);
    /* "         0          0 4294967295" -> "0:0:4294967295" */
    char compact[128] = "unreadable";
    unsigned long a, b, c;
    FILE *map = fopen("/proc/self/uid_map", "r");
    if (map && fscanf(map, "%lu %lu %lu", &a, &b, &c) == 3) snprintf(compact, sizeof compact, "%lu:%lu:%lu", a, b, c);
    if (map) fclose(map);
    (void)uid_map;

    int mounts = 0;
    FILE *file = fopen("/proc/self/mounts", "r");
    while (file && fgets(line, sizeof line, file)) mounts++;
    if (file) fclose(file);

    char netifs[512] = "", macs[512] = "";
    file = fopen("/proc/net/dev", "r");
    for (int n = 0; file && fgets(line, sizeof line, file); n++) {
        if (n < 2) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *name = line;
        while (*name == ' ') name++;
        if (netifs[0]) strncat(netifs, ",", sizeof netifs - strlen(netifs) - 1);
        strncat(netifs, name, sizeof netifs - strlen(netifs) - 1);
        char mac[32];
        mac_of(name, mac, sizeof mac);
        if (mac[0]) {
            if (macs[0]) strncat(macs, ",", sizeof macs - strlen(macs) - 1);
            strncat(macs, mac, sizeof macs - strlen(macs) - 1);
        }
    }
    if (file) fclose(file);

    /* Block devices as /sys/block lists them (loop and ram devices left out): a VM's own disks;
     * a container with the host's sysfs sees the host's. */
    char blockdevs[512] = "";
    DIR *block = opendir("/sys/block");
    for (struct dirent *entry; block && (entry = readdir(block));) {
        const char *name = entry->d_name;
        if (name[0] == '.' || strncmp(name, "loop", 4) == 0 || strncmp(name, "ram", 3) == 0) continue;
        if (blockdevs[0]) strncat(blockdevs, ",", sizeof blockdevs - strlen(blockdevs) - 1);
        strncat(blockdevs, name, sizeof blockdevs - strlen(blockdevs) - 1);
    }
    if (block) closedir(block);

    char cap_eff[64] = "unknown";
    file = fopen("/proc/self/status", "r");
    while (file && fgets(line, sizeof line, file)) {
        if (strncmp(line, "CapEff:", 7) == 0) { snprintf(cap_eff, sizeof cap_eff, "%.63s", line + 8); clean(cap_eff); }
    }
    if (file) fclose(file);

    char host_file[128] = "none", keyring[128];
    if (argc > 1) {
        read_line(argv[1], host_file, sizeof host_file);
        if (strcmp(host_file, "unreadable") == 0 || strcmp(host_file, "empty") == 0) snprintf(host_file, sizeof host_file, "none");
    }
    keyring_payload(argc > 2 ? argv[2] : "tandem-host-canary", keyring, sizeof keyring);

    char network[512] = "";
    if (argc > 4) {
        int port = atoi(argv[3]);
        char loopback[128], abstract[128], bridge[128] = "unrouted";
        read_tcp("127.0.0.1", port, loopback, sizeof loopback);
        read_abstract(argv[2], abstract, sizeof abstract);
        if (on_link(argv[4])) read_tcp(argv[4], port, bridge, sizeof bridge);
        snprintf(network, sizeof network, " net_loopback=%s net_abstract=%s net_bridge=%s", loopback, abstract, bridge);
    }

    char pid1[256];
    read_line("/proc/1/comm", pid1, sizeof pid1);
    struct sysinfo info;
    sysinfo(&info);
    printf("TANDEM-PROBE pids=%d max_pid=%d hostname=%s kernel=%s boot_id=%s mounts=%d netifs=%s blockdevs=%s uid_map=%s cap_eff=%s cpus=%ld mem_mib=%lu pid1=%s"
           " macs=%s host_procs=%s host_file=%s keyring=%s kcore=%s sys_write=%s%s\n",
           pids, max_pid, hostname[0] ? hostname : "none", names.release, boot_id, mounts, netifs[0] ? netifs : "none",
           blockdevs[0] ? blockdevs : "none", compact,
           cap_eff, sysconf(_SC_NPROCESSORS_ONLN), (unsigned long)(info.totalram * info.mem_unit >> 20), pid1,
           macs[0] ? macs : "none", process_visible("lab-time") ? "yes" : "no", host_file, keyring, kcore_state(), sys_write_state(), network);
    return 0;
}
