/*
 * blkio: block-device throughput, as fio's psync engine at queue depth 1 measures it, on a disk
 * the VMM gives the guest (or any file). With O_DIRECT, so the guest's page cache is not what is
 * measured:
 *
 *   blkio [DEVICE] [MiB] [SECONDS]   (defaults: /dev/vda, 32, 2)
 *   →  blkio device=/dev/vda mib=32 write_mib_s=W read_mib_s=R randread_iops=I verified=yes
 *
 * DEVICE may be `serial=S`: the disk whose /sys/block/NAME/serial is S (virtio-blk's GET_ID;
 * Tandem's drives are tandem-0, tandem-1, ..., and the lab gives QEMU's the same), since the
 * order in which a kernel names two virtio disks is not the order they were given.
 *
 *   1. sequential write: MiB MiB in 1 MiB requests, then fsync (the flush reaches the device);
 *   2. sequential read of the same MiB, checked against what was written (verified=yes|no);
 *   3. random 4 KiB reads over those MiB, one at a time, for SECONDS: IOPS.
 *
 * The data is the workloads' pattern (pattern.h), so the host can check the disk afterwards:
 * running blkio on a host file of the same size writes the same bytes. The device node may appear a moment after boot (the driver probes
 * asynchronously): blkio waits for it up to 5 s.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../pattern.h"

#define BLOCK PATTERN_BLOCK
#define SMALL 4096

/* The /dev path of the disk whose serial is `serial`, waiting up to 5 s for the driver to probe. */
static int by_serial(const char *serial, char *path, size_t size) {
    for (int attempt = 0; attempt < 500; attempt++) {
        DIR *block = opendir("/sys/block");
        for (struct dirent *entry; block && (entry = readdir(block));) {
            char file[300], value[64] = "";
            snprintf(file, sizeof file, "/sys/block/%s/serial", entry->d_name);
            FILE *in = fopen(file, "r");
            if (!in) continue;
            if (fgets(value, sizeof value, in)) value[strcspn(value, "\n")] = 0;
            fclose(in);
            if (strcmp(value, serial) == 0) {
                snprintf(path, size, "/dev/%s", entry->d_name);
                closedir(block);
                return 0;
            }
        }
        if (block) closedir(block);
        usleep(10000);
    }
    return -1;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *device = argc > 1 ? argv[1] : "/dev/vda";
    char found[300];
    if (strncmp(device, "serial=", 7) == 0) {
        if (by_serial(device + 7, found, sizeof found) != 0) { fprintf(stderr, "blkio: no disk with serial %s\n", device + 7); return 1; }
        device = found;
    }
    long mib = argc > 2 ? atol(argv[2]) : 32;
    double seconds = argc > 3 ? atof(argv[3]) : 2;
    if (mib <= 0 || seconds <= 0) { fprintf(stderr, "blkio: MiB and seconds must be positive\n"); return 2; }
    struct stat info;
    for (int i = 0; i < 500 && stat(device, &info) != 0; i++) usleep(10000);
    int fd = open(device, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (fd < 0) { fprintf(stderr, "blkio: open %s: %s\n", device, strerror(errno)); return 1; }
    uint64_t *block, *check;
    if (posix_memalign((void **)&block, SMALL, BLOCK) != 0 || posix_memalign((void **)&check, SMALL, BLOCK) != 0) return 1;

    /* The pattern is made between requests, as fio refills its buffers: counted in the write time
     * (it costs a small fraction of a 1 MiB request). */
    double start = now();
    for (long i = 0; i < mib; i++) {
        pattern_block(block, i);
        if (pwrite(fd, block, BLOCK, (off_t)i * BLOCK) != BLOCK) { fprintf(stderr, "blkio: write %s: %s\n", device, strerror(errno)); return 1; }
    }
    if (fsync(fd) != 0) { fprintf(stderr, "blkio: fsync %s: %s\n", device, strerror(errno)); return 1; }
    double written = now();
    /* The pattern is generated again while checking: time the reads only. */
    double reading = 0;
    int verified = 1;
    for (long i = 0; i < mib; i++) {
        double before = now();
        if (pread(fd, check, BLOCK, (off_t)i * BLOCK) != BLOCK) { fprintf(stderr, "blkio: read %s: %s\n", device, strerror(errno)); return 1; }
        reading += now() - before;
        pattern_block(block, i);
        if (memcmp(block, check, BLOCK) != 0) verified = 0;
    }
    uint64_t state = 88172645463325252ull;
    long reads = 0, positions = mib * (BLOCK / SMALL);
    double random_start = now(), random_end;
    do {
        for (int batch = 0; batch < 16; batch++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if (pread(fd, check, SMALL, (off_t)(state % (uint64_t)positions) * SMALL) != SMALL) {
                fprintf(stderr, "blkio: random read %s: %s\n", device, strerror(errno));
                return 1;
            }
            reads++;
        }
        random_end = now();
    } while (random_end - random_start < seconds);
    close(fd);
    printf("blkio device=%s mib=%ld write_mib_s=%.1f read_mib_s=%.1f randread_iops=%.0f verified=%s\n", device, mib,
           mib / (written - start), mib / reading, reads / (random_end - random_start), verified ? "yes" : "no");
    return verified ? 0 : 1;
}
