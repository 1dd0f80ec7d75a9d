/*
 * memory: touches N MiB (default 64) page by page, then reads it back, and reports the write and
 * read bandwidth — what a guest's first touch of its RAM costs (page faults, and in a VM the
 * hypervisor's) against a container's (the host's page faults only).
 *
 *   memory [MiB]  →  memory mib=N write_mib_s=W read_mib_s=R
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long mib = argc > 1 ? atol(argv[1]) : 64;
    if (mib <= 0) { fprintf(stderr, "memory: MiB must be positive\n"); return 2; }
    size_t size = (size_t)mib << 20;
    unsigned char *block = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (block == MAP_FAILED) { perror("memory: mmap"); return 1; }
    double start = now();
    for (size_t i = 0; i < size; i += 64) block[i] = (unsigned char)i;
    double written = now();
    unsigned long sum = 0;
    for (size_t i = 0; i < size; i += 64) sum += block[i];
    double read = now();
    printf("memory mib=%ld write_mib_s=%.0f read_mib_s=%.0f check=%lu\n", mib, mib / (written - start), mib / (read - written), sum & 0xff);
    return 0;
}
