/*
 * io: writes N MiB (default 16) to a file in the sandbox's own filesystem (/tmp: a VM's
 * initramfs or disk, a container's writable layer), fsyncs it, reads it back, removes it.
 *
 *   io [MiB]  →  io mib=N write_mib_s=W fsync_ms=F read_mib_s=R
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 16;
    if (mib <= 0) { fprintf(stderr, "io: MiB must be positive\n"); return 2; }
    static char buffer[1 << 20];
    memset(buffer, 0x5a, sizeof buffer);
    const char *path = "/tmp/tandem-io.dat";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror("io: open"); return 1; }
    double start = now();
    for (long i = 0; i < mib; i++) {
        if (write(fd, buffer, sizeof buffer) != (ssize_t)sizeof buffer) { perror("io: write"); return 1; }
    }
    double written = now();
    if (fsync(fd) != 0) { perror("io: fsync"); return 1; }
    double synced = now();
    close(fd);
    fd = open(path, O_RDONLY);
    if (fd < 0) { perror("io: open"); return 1; }
    long total = 0;
    ssize_t n;
    while ((n = read(fd, buffer, sizeof buffer)) > 0) total += n;
    double read_done = now();
    close(fd);
    unlink(path);
    if (total != mib << 20) { fprintf(stderr, "io: read back %ld bytes of %ld\n", total, mib << 20); return 1; }
    printf("io mib=%ld write_mib_s=%.0f fsync_ms=%.2f read_mib_s=%.0f\n", mib, mib / (written - start), (synced - written) * 1e3,
           mib / (read_done - synced));
    return 0;
}
