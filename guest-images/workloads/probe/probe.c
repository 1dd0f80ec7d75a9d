/*
 * probe: what a workload can see of the machine it runs in — the isolation facts Tandem's report
 * compares across VMs and containers. One line, machine-readable:
 *
 *   TANDEM-PROBE pids=N max_pid=N hostname=H kernel=R boot_id=B mounts=N netifs=lo,eth0
 *                uid_map=0:0:4294967295 cap_eff=HEX cpus=N mem_mib=N pid1=CMD
 *
 * Values never contain spaces (a space inside becomes '_').
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
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

int main(void) {
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

    char netifs[512] = "";
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
    }
    if (file) fclose(file);

    char cap_eff[64] = "unknown";
    file = fopen("/proc/self/status", "r");
    while (file && fgets(line, sizeof line, file)) {
        if (strncmp(line, "CapEff:", 7) == 0) { snprintf(cap_eff, sizeof cap_eff, "%.63s", line + 8); clean(cap_eff); }
    }
    if (file) fclose(file);

    char pid1[256];
    read_line("/proc/1/comm", pid1, sizeof pid1);
    struct sysinfo info;
    sysinfo(&info);
    printf("TANDEM-PROBE pids=%d max_pid=%d hostname=%s kernel=%s boot_id=%s mounts=%d netifs=%s uid_map=%s cap_eff=%s cpus=%ld mem_mib=%lu pid1=%s\n",
           pids, max_pid, hostname[0] ? hostname : "none", names.release, boot_id, mounts, netifs[0] ? netifs : "none", compact,
           cap_eff, sysconf(_SC_NPROCESSORS_ONLN), (unsigned long)(info.totalram * info.mem_unit >> 20), pid1);
    return 0;
}
