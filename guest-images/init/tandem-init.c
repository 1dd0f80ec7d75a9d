/*
 * tandem-init — PID 1 of every Tandem guest and container, byte for byte the same everywhere.
 *
 *   1. mounts /proc, /sys and /dev when it is PID 1 and they are not there yet (a container
 *      runtime has usually mounted them; a VM's initramfs has not); with `tandem.root=DEVICE` on
 *      the kernel command line (a disk guest), it loads the modules listed in
 *      /lib/modules/tandem.load, mounts DEVICE (ext4) and switches root to it, then runs the
 *      disk's own /.tandem/init or /init — the same program — as PID 1 there, as a distro's
 *      initramfs does; a root that cannot be mounted ends the run (status 125), it is never
 *      replaced by the initramfs;
 *   2. in a VM with virtio-mmio devices, loads the modules in /lib/modules/tandem.load (the
 *      image's virtio modules for a distro kernel); with `tandem.net=ADDRESS/PREFIX[,GATEWAY]`
 *      gives eth0 that address; prints the ready marker line and, in a Tandem microVM, writes
 *      the READY port;
 *   3. runs the workload: argv[1] (a container: `tandem-init compute 100000`), else
 *      `tandem.workload=NAME` and `tandem.args=A,B` from /proc/cmdline (a VM), else — a user's
 *      image as a VM's root — what /.tandem/run says (see run_image), else a shell;
 *   4. prints its result line: `TANDEM-RESULT workload=NAME status=N ms=T`;
 *   5. hands the status to the EXIT port (microVM), then powers off (VM) or exits with it.
 *
 * The ports are used only when the kernel command line says `tandem.ports=1` (Tandem's VMM adds
 * it) and this is PID 1: inside a container /proc/cmdline is the host's. Port numbers come from
 * tandem_guest_abi.h, the definition the VMM uses too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <grp.h>
#include <time.h>
#include <unistd.h>

#include "tandem_guest_abi.h"

#define READY_MARKER "TANDEM-READY"
#define RESULT_PREFIX "TANDEM-RESULT"
#define MAX_ARGS 16

static char cmdline[4096];

static void say(const char *format, ...) {
    char line[512];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    if (length < 0) return;
    if ((size_t)length >= sizeof line) length = sizeof line - 1;
    /* One write per line, so markers never interleave with the workload's output. */
    ssize_t ignored = write(STDOUT_FILENO, line, (size_t)length);
    (void)ignored;
}

static void mount_if_missing(const char *source, const char *target, const char *type, unsigned long flags) {
    struct stat info, root;
    if (strcmp(type, "devtmpfs") == 0) {
        /* /dev counts as there when something is mounted on it (a container runtime's tmpfs): the
         * initramfs's own /dev/console and /dev/null sit in a plain directory on the root. */
        if (stat(target, &info) == 0 && stat("/", &root) == 0 && info.st_dev != root.st_dev) return;
    } else {
        char probe[64];
        snprintf(probe, sizeof probe, "%s/%s", target, strcmp(type, "proc") == 0 ? "self" : "kernel");
        if (stat(probe, &info) == 0) return;      /* already there (a container runtime mounted it) */
    }
    mkdir(target, 0755);
    if (mount(source, target, type, flags, NULL) != 0 && errno != EBUSY)
        say("tandem-init: mount %s on %s: %s\n", type, target, strerror(errno));
}

/* The value of `key=` in the kernel command line, copied into out; 0 when absent. */
static int cmdline_value(const char *key, char *out, size_t size) {
    size_t key_length = strlen(key);
    for (char *token = cmdline; *token;) {
        while (*token == ' ' || *token == '\n') token++;
        char *end = token;
        while (*end && *end != ' ' && *end != '\n') end++;
        if ((size_t)(end - token) > key_length && strncmp(token, key, key_length) == 0 && token[key_length] == '=') {
            size_t length = (size_t)(end - token) - key_length - 1;
            if (length >= size) length = size - 1;
            memcpy(out, token + key_length + 1, length);
            out[length] = 0;
            return 1;
        }
        token = end;
    }
    return 0;
}

static double now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec * 1e3 + now.tv_nsec / 1e6;
}

/* Loads each module named (one path per line) in `list`, in order. Without CAP_SYS_MODULE (a
 * container) nothing is loaded and nothing said: the host's kernel is not ours to change. */
static void load_modules(const char *list) {
    /* Modules are for one kernel release: under another (Tandem's microVM kernel, which has
     * everything built in) there is nothing to load. */
    char release[128] = "";
    FILE *wanted = fopen("/lib/modules/tandem.release", "r");
    if (wanted) {
        if (fgets(release, sizeof release, wanted)) release[strcspn(release, "\n")] = 0;
        fclose(wanted);
        struct utsname running;
        if (release[0] && uname(&running) == 0 && strcmp(running.release, release) != 0) return;
    }
    FILE *file = fopen(list, "r");
    if (!file) return;
    char path[256];
    while (fgets(path, sizeof path, file)) {
        path[strcspn(path, "\n")] = 0;
        if (!path[0]) continue;
        int module = open(path, O_RDONLY | O_CLOEXEC);
        /* A compressed module (.ko.xz, .ko.zst: Debian's newer kernels) is decompressed by the
         * kernel itself (MODULE_INIT_COMPRESSED_FILE, Linux 5.17+ with CONFIG_MODULE_DECOMPRESS). */
        size_t length = strlen(path);
        int compressed = length > 3 && (strcmp(path + length - 3, ".xz") == 0 || strcmp(path + length - 4, ".zst") == 0
                                        || strcmp(path + length - 3, ".gz") == 0);
        int failed = module < 0 || (syscall(SYS_finit_module, module, "", compressed ? 4 : 0) != 0 && errno != EEXIST);
        int error = errno;
        if (module >= 0) close(module);
        if (failed && error == EPERM) break;
        if (failed) say("tandem-init: loading %s: %s\n", path, strerror(error));
    }
    fclose(file);
}

/* Whether the VM has virtio-mmio devices: described in its DSDT (LNRO0005, Tandem's VMM) or on
 * the command line (virtio_mmio.device=, kernels built with VIRTIO_MMIO_CMDLINE_DEVICES). */
static int virtio_mmio_present(void) {
    DIR *devices = opendir("/sys/bus/platform/devices");
    if (!devices) return 0;
    int found = 0;
    for (struct dirent *entry; !found && (entry = readdir(devices));)
        found = strncmp(entry->d_name, "LNRO0005", 8) == 0 || strncmp(entry->d_name, "virtio-mmio", 11) == 0;
    closedir(devices);
    return found;
}

/* What to run, when the host put it in the initramfs (a libvirt guest of a user's image: its root
 * disk is shared by every run of the image, so the run's own /.tandem/run travels with the first
 * stage): copied to the new root, into the run's copy-on-write layer of the disk. */
static int copy_run_file(void) {
    static char bytes[65536];
    int in = open("/.tandem/run", O_RDONLY | O_CLOEXEC);
    if (in < 0) return 0;
    ssize_t length = read(in, bytes, sizeof bytes);
    close(in);
    mkdir("/newroot/.tandem", 0755);
    int out = open("/newroot/.tandem/run", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (length < 0 || out < 0 || write(out, bytes, (size_t)length) != length || close(out) != 0) {
        say("tandem-init: copying /.tandem/run to the disk: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

/* Sets `name`'s IPv4 address (and netmask, from `prefix`) and brings it up; a gateway, if any,
 * becomes the default route. Returns 0, or -1 with errno. */
static int configure_interface(const char *name, const char *address, int prefix, const char *gateway) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -1;
    struct ifreq request;
    memset(&request, 0, sizeof request);
    snprintf(request.ifr_name, IFNAMSIZ, "%s", name);
    struct sockaddr_in *in = (struct sockaddr_in *)&request.ifr_addr;
    in->sin_family = AF_INET;
    int ok = 1;
    if (address) {
        ok = inet_pton(AF_INET, address, &in->sin_addr) == 1 && ioctl(sock, SIOCSIFADDR, &request) == 0;
        in->sin_addr.s_addr = prefix <= 0 ? 0 : htonl(0xffffffffu << (32 - prefix));
        ok = ok && ioctl(sock, SIOCSIFNETMASK, &request) == 0;
    }
    ok = ok && ioctl(sock, SIOCGIFFLAGS, &request) == 0;
    request.ifr_flags |= IFF_UP;
    ok = ok && ioctl(sock, SIOCSIFFLAGS, &request) == 0;
    if (ok && gateway && gateway[0]) {
        struct rtentry route;
        memset(&route, 0, sizeof route);
        ((struct sockaddr_in *)&route.rt_dst)->sin_family = AF_INET;
        ((struct sockaddr_in *)&route.rt_genmask)->sin_family = AF_INET;
        struct sockaddr_in *via = (struct sockaddr_in *)&route.rt_gateway;
        via->sin_family = AF_INET;
        route.rt_flags = RTF_UP | RTF_GATEWAY;
        ok = inet_pton(AF_INET, gateway, &via->sin_addr) == 1 && ioctl(sock, SIOCADDRT, &route) == 0;
    }
    int error = errno;
    close(sock);
    errno = error;
    return ok ? 0 : -1;
}

/* A VM's network (`tandem.net=ADDRESS/PREFIX[,GATEWAY]`, Tandem's VMM with --net): loopback up,
 * and the first Ethernet interface (eth0, which the virtio-net driver may bind a moment after
 * its module loads) given that address. Said on failure; the run goes on without it. */
static void configure_network(const char *spec) {
    configure_interface("lo", NULL, 0, NULL);
    char copy[256], *gateway = NULL;
    snprintf(copy, sizeof copy, "%s", spec);
    char *comma = strchr(copy, ',');
    if (comma) { *comma = 0; gateway = comma + 1; }
    char *slash = strchr(copy, '/');
    int prefix = 24;
    if (slash) { *slash = 0; prefix = atoi(slash + 1); }
    struct stat info;
    for (int i = 0; i < 500 && stat("/sys/class/net/eth0", &info) != 0; i++) usleep(10000);
    if (configure_interface("eth0", copy, prefix, gateway) != 0)
        say("tandem-init: configuring eth0 as %s: %s\n", spec, strerror(errno));
}

/* A disk guest: mount `device` and make it the root, keeping /dev, /proc and /sys; then exec its
 * /init. Returns only on failure (the caller goes on in the initramfs and says so). */
static void switch_root(const char *device, char **argv) {
    load_modules("/lib/modules/tandem.load");
    struct stat info;
    for (int i = 0; i < 500 && stat(device, &info) != 0; i++) usleep(10000);  /* the driver probes asynchronously */
    mkdir("/newroot", 0755);
    if (mount(device, "/newroot", "ext4", 0, NULL) != 0) { say("tandem-init: mount %s: %s\n", device, strerror(errno)); return; }
    if (copy_run_file() != 0) return;
    const char *keep[] = { "/dev", "/proc", "/sys" };
    for (int i = 0; i < 3; i++) {
        char target[64];
        snprintf(target, sizeof target, "/newroot%s", keep[i]);
        mkdir(target, 0755);
        if (mount(keep[i], target, NULL, MS_MOVE, NULL) != 0) say("tandem-init: move %s: %s\n", keep[i], strerror(errno));
    }
    /* The initramfs stays behind, unreachable (a busybox switch_root would also empty it). */
    if (chdir("/newroot") != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0) {
        say("tandem-init: switching root to %s: %s\n", device, strerror(errno));
        return;
    }
    /* A user's image keeps its own /init, if it has one: Tandem's is /.tandem/init there. */
    const char *next = access("/.tandem/init", X_OK) == 0 ? "/.tandem/init" : "/init";
    execv(next, argv);
    say("tandem-init: exec %s on %s: %s\n", next, device, strerror(errno));
}

/* The end of a run that could not start: the result line with status 125 (Tandem could not do
 * what was asked, docs/exit-status.md), the EXIT port, power off. */
static void fail_run(const char *what, int ports) {
    say(RESULT_PREFIX " workload=%s status=125 ms=0\n", what);
    if (ports) outl(125u, TANDEM_PORT_EXIT);
    sync();
    reboot(RB_POWER_OFF);
    _exit(125);
}

/* mkdir -p `path` (absolute), each missing directory 0755 and owned by whoever runs this. */
static int make_directories(const char *path) {
    char partial[4096];
    size_t length = strlen(path);
    if (length >= sizeof partial) { errno = ENAMETOOLONG; return -1; }
    for (size_t i = 1; i <= length; i++) {
        if (path[i] != '/' && path[i] != 0) continue;
        memcpy(partial, path, i);
        partial[i] = 0;
        if (mkdir(partial, 0755) != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

/* A user's image as the root: /.tandem/run, written by the host, says what to run as NUL-ended
 * `key=value` entries — path= (the program, found on the host in the image), arg= (each argv
 * entry, in order), env= (each), cwd=, uid=, gid=, group= (each supplementary gid). Runs it
 * (forked: PID 1 stays to reap) and returns its status; -1 when there is no such file. */
static int run_image(double *started) {
    static char spec[65536];
    int fd = open("/.tandem/run", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t length = read(fd, spec, sizeof spec - 1);
    close(fd);
    if (length <= 0) return -1;
    spec[length] = 0;
    char *args[256], *env[256], *path = NULL, *cwd = "/";
    gid_t groups[64];
    int arg_count = 0, env_count = 0, group_count = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    for (char *entry = spec, *next; entry < spec + length; entry = next) {
        next = entry + strlen(entry) + 1;  /* before the '=' below is cut */
        char *equals = strchr(entry, '=');
        if (!equals) continue;
        *equals = 0;
        char *value = equals + 1;
        if (strcmp(entry, "path") == 0) path = value;
        else if (strcmp(entry, "arg") == 0 && arg_count < 255) args[arg_count++] = value;
        else if (strcmp(entry, "env") == 0 && env_count < 255) env[env_count++] = value;
        else if (strcmp(entry, "cwd") == 0) cwd = value;
        else if (strcmp(entry, "uid") == 0) uid = (uid_t)strtoul(value, NULL, 10);
        else if (strcmp(entry, "gid") == 0) gid = (gid_t)strtoul(value, NULL, 10);
        else if (strcmp(entry, "group") == 0 && group_count < 64) groups[group_count++] = (gid_t)strtoul(value, NULL, 10);
    }
    args[arg_count] = NULL;
    env[env_count] = NULL;
    if (!path || arg_count == 0) { say("tandem-init: /.tandem/run names no program\n"); return 125; }
    *started = now_ms();
    pid_t child = fork();
    if (child == 0) {
        /* The image's WorkingDir where the image lacks it, as Docker makes it: by root, 0755. */
        if (access(cwd, F_OK) != 0 && make_directories(cwd) != 0) {
            say("tandem-init: making the working directory %s: %s\n", cwd, strerror(errno));
            _exit(125);
        }
        if (setgroups((size_t)group_count, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
            say("tandem-init: switching to uid %u gid %u: %s\n", (unsigned)uid, (unsigned)gid, strerror(errno));
            _exit(125);
        }
        if (chdir(cwd) != 0) { say("tandem-init: chdir %s: %s\n", cwd, strerror(errno)); _exit(125); }
        execve(path, args, env);
        say("tandem-init: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    if (child < 0) { say("tandem-init: fork: %s\n", strerror(errno)); return 125; }
    for (;;) {
        int wait_status;
        pid_t done = wait(&wait_status);
        if (done < 0 && errno == EINTR) continue;
        if (done < 0) return 125;
        if (done == child) return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
    }
}

int main(int argc, char **argv) {
    int pid1 = getpid() == 1;
    if (pid1) {
        mount_if_missing("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
        mount_if_missing("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
        mount_if_missing("devtmpfs", "/dev", "devtmpfs", MS_NOSUID);
    }
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t length = read(fd, cmdline, sizeof cmdline - 1);
        cmdline[length > 0 ? length : 0] = 0;
        close(fd);
    }
    /* Still in the initramfs (its root is rootfs/tmpfs, not a block device): go to the disk. */
    char root_device[128];
    struct stat root_info;
    char value[256];
    int ports = pid1 && cmdline_value("tandem.ports", value, sizeof value) && strcmp(value, "1") == 0
        && ioperm(TANDEM_PORT_READY, 8, 1) == 0 && inb(TANDEM_PORT_READY) == TANDEM_PORT_SIGNATURE;
    if (pid1 && cmdline_value("tandem.root", root_device, sizeof root_device) && stat("/", &root_info) == 0
        && major(root_info.st_dev) == 0) {
        switch_root(root_device, argv);
        /* Only back here when the disk could not be the root: the run fails, said, never
         * silently in the initramfs instead. */
        say("tandem-init: the root disk %s could not be mounted: the run stops\n", root_device);
        fail_run("root", ports);
    }

    /* The workload and its arguments. */
    char workload[64] = "";
    char args_text[256] = "";
    char *workload_argv[MAX_ARGS + 2];
    int count = 0;
    /* A VM's kernel command line wins when it names a workload: the kernel also hands init every
     * word it does not know as an argument, which must not be taken for one. */
    if (pid1 && cmdline_value("tandem.workload", workload, sizeof workload)) {
        if (cmdline_value("tandem.args", args_text, sizeof args_text))
            for (char *arg = strtok(args_text, ","); arg && count < MAX_ARGS; arg = strtok(NULL, ","))
                workload_argv[1 + count++] = arg;
    } else if (argc > 1) {
        snprintf(workload, sizeof workload, "%s", argv[1]);
        for (int i = 2; i < argc && count < MAX_ARGS; i++) workload_argv[1 + count++] = argv[i];
    }
    workload_argv[1 + count] = NULL;

    /* A microVM's disks (--drive) need the virtio modules the image carries for a distro kernel;
     * loaded before the ready marker, so a workload finds its /dev/vdX driver bound. */
    if (pid1 && virtio_mmio_present()) load_modules("/lib/modules/tandem.load");
    if (pid1 && cmdline_value("tandem.net", value, sizeof value)) configure_network(value);

    say(READY_MARKER "\n");
    if (ports) outb(1, TANDEM_PORT_READY);

    /* A user's image: its own program, as the host wrote it down. */
    double image_started = 0;
    int image_status = pid1 && !workload[0] ? run_image(&image_started) : -1;
    if (image_status >= 0) {
        say(RESULT_PREFIX " workload=image status=%d ms=%.3f\n", image_status, now_ms() - image_started);
        if (ports) outl((unsigned)image_status, TANDEM_PORT_EXIT);
        sync();
        reboot(RB_POWER_OFF);
        return image_status;
    }

    if (!workload[0]) {
        if (!pid1) return 0;
        say("tandem-init: no workload given (tandem.workload=NAME); starting a shell\n");
        execl("/bin/sh", "sh", (char *)NULL);
        say("tandem-init: exec /bin/sh: %s\n", strerror(errno));
        snprintf(workload, sizeof workload, "sh");
    }

    char path[128];
    snprintf(path, sizeof path, "/bin/%s", workload);
    workload_argv[0] = workload;
    double started = now_ms();
    int status = 127;
    /* `hello` is built in: the start-latency workload must cost nothing beyond the start itself. */
    pid_t child = strcmp(workload, "hello") == 0 ? -2 : fork();
    if (child == -2) {
        say("hello from tandem-init\n");
        status = 0;
    }
    if (child == 0) {
        execv(path, workload_argv);
        say("tandem-init: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    if (child == -1) {
        say("tandem-init: fork: %s\n", strerror(errno));
    } else if (child > 0) {
        /* As PID 1, also reap orphans the workload leaves behind, until the workload itself ends. */
        for (;;) {
            int wait_status;
            pid_t done = wait(&wait_status);
            if (done < 0 && errno == EINTR) continue;
            if (done < 0) break;
            if (done == child) {
                status = WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
                break;
            }
        }
    }
    say(RESULT_PREFIX " workload=%s status=%d ms=%.3f\n", workload, status, now_ms() - started);

    if (ports) outl((unsigned)status, TANDEM_PORT_EXIT);
    /* In a VM (Tandem's, libvirt's, QEMU's: its kernel command line names tandem.workload or
     * tandem.ports), PID 1 must not return (the kernel would panic): power off. In a container
     * PID 1 just returns its status, which the runtime reports. */
    if (pid1 && (cmdline_value("tandem.ports", value, sizeof value) || cmdline_value("tandem.workload", value, sizeof value))) {
        sync();
        reboot(RB_POWER_OFF);
    }
    return status;
}
