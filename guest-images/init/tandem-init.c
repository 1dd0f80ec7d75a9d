/*
 * tandem-init — PID 1 of every Tandem guest and container, byte for byte the same everywhere.
 *
 *   1. mounts /proc, /sys and /dev when it is PID 1 and they are not there yet (a container
 *      runtime has usually mounted them; a VM's initramfs has not); with `tandem.root=DEVICE` on
 *      the kernel command line (a disk guest), it loads the modules listed in
 *      /lib/modules/tandem.load, mounts DEVICE (ext4) and switches root to it, then runs the
 *      disk's own /init — the same program — as PID 1 there, as a distro's initramfs does;
 *   2. prints the ready marker line and, in a Tandem microVM, writes the READY port;
 *   3. runs the workload: argv[1] (a container: `tandem-init compute 100000`), else
 *      `tandem.workload=NAME` and `tandem.args=A,B` from /proc/cmdline (a VM), else a shell;
 *   4. prints its result line: `TANDEM-RESULT workload=NAME status=N ms=T`;
 *   5. hands the status to the EXIT port (microVM), then powers off (VM) or exits with it.
 *
 * The ports are used only when the kernel command line says `tandem.ports=1` (Tandem's VMM adds
 * it) and this is PID 1: inside a container /proc/cmdline is the host's. Port numbers come from
 * tandem_guest_abi.h, the definition the VMM uses too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#include <sys/wait.h>
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

/* Loads each module named (one path per line) in `list`, in order. */
static void load_modules(const char *list) {
    FILE *file = fopen(list, "r");
    if (!file) return;
    char path[256];
    while (fgets(path, sizeof path, file)) {
        path[strcspn(path, "\n")] = 0;
        if (!path[0]) continue;
        int module = open(path, O_RDONLY | O_CLOEXEC);
        if (module < 0 || (syscall(SYS_finit_module, module, "", 0) != 0 && errno != EEXIST))
            say("tandem-init: loading %s: %s\n", path, strerror(errno));
        if (module >= 0) close(module);
    }
    fclose(file);
}

/* A disk guest: mount `device` and make it the root, keeping /dev, /proc and /sys; then exec its
 * /init. Returns only on failure (the caller goes on in the initramfs and says so). */
static void switch_root(const char *device, char **argv) {
    load_modules("/lib/modules/tandem.load");
    struct stat info;
    for (int i = 0; i < 500 && stat(device, &info) != 0; i++) usleep(10000);  /* the driver probes asynchronously */
    mkdir("/newroot", 0755);
    if (mount(device, "/newroot", "ext4", 0, NULL) != 0) { say("tandem-init: mount %s: %s\n", device, strerror(errno)); return; }
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
    execv("/init", argv);
    say("tandem-init: exec /init on %s: %s\n", device, strerror(errno));
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
    if (pid1 && cmdline_value("tandem.root", root_device, sizeof root_device) && stat("/", &root_info) == 0
        && major(root_info.st_dev) == 0) {
        switch_root(root_device, argv);
    }

    char value[256];
    int ports = pid1 && cmdline_value("tandem.ports", value, sizeof value) && strcmp(value, "1") == 0
        && ioperm(TANDEM_PORT_READY, 8, 1) == 0 && inb(TANDEM_PORT_READY) == TANDEM_PORT_SIGNATURE;

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

    say(READY_MARKER "\n");
    if (ports) outb(1, TANDEM_PORT_READY);

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
