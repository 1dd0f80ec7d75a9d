/* The compute workload as a static Linux program: `compute [n]` (default 1000000).
 * Prints the same result line as the tiny guest, so every backend's figure can be compared. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "compute.h"

int main(int argc, char **argv) {
    unsigned long long n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000ULL;
    unsigned char *scratch = malloc(n + 1);
    if (!scratch) { fprintf(stderr, "compute: cannot allocate %llu bytes\n", n + 1); return 2; }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct compute_result result;
    compute_sieve(n, scratch, n + 1, &result);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double ms = (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6;
    printf("compute n=%llu primes=%llu sum=%llu ms=%.3f\n", (unsigned long long)result.n,
           (unsigned long long)result.primes, (unsigned long long)result.sum, ms);
    return 0;
}
