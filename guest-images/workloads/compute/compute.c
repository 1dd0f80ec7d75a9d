/* compute.c — the sieve behind every `compute` figure; see compute.h. */
#include "compute.h"

int compute_sieve(uint64_t n, uint8_t *scratch, uint64_t scratch_size, struct compute_result *out) {
    if (scratch_size < n + 1) return -1;
    for (uint64_t i = 0; i <= n; i++) scratch[i] = 1;
    uint64_t primes = 0, sum = 0;
    for (uint64_t i = 2; i <= n; i++) {
        if (!scratch[i]) continue;
        primes++;
        sum += i;
        for (uint64_t multiple = i * i; multiple <= n; multiple += i) scratch[multiple] = 0;
    }
    out->n = n;
    out->primes = primes;
    out->sum = sum;
    return 0;
}
