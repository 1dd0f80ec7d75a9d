/*
 * compute.h — Tandem's shared deterministic workload: count the primes up to n with the sieve of
 * Eratosthenes and sum them. The same source runs as a tiny bare guest, as a static Linux program
 * in the Linux guests and containers, and as a bare host process, so results must match everywhere.
 * Freestanding: no libc, no allocation; the caller supplies n + 1 bytes of scratch memory.
 */
#ifndef TANDEM_COMPUTE_H
#define TANDEM_COMPUTE_H

#include <stdint.h>

struct compute_result {
    uint64_t n;
    uint64_t primes;    /* how many primes are <= n */
    uint64_t sum;       /* their sum, modulo 2^64 */
};

/* Returns 0 on success, -1 when scratch_size < n + 1. */
int compute_sieve(uint64_t n, uint8_t *scratch, uint64_t scratch_size, struct compute_result *out);

#endif
