/* compute: the shared sieve (workloads/compute) over n = --arg, in the RAM after the image. */
#include "tiny.h"
#include "compute.h"

#define STACK_RESERVE (64 * 1024)

int tiny_main(uint64_t n, uint64_t ram_size) {
    tiny_ready();
    uint64_t scratch_start = (uint64_t)__image_end;
    uint64_t scratch_size = ram_size > scratch_start + STACK_RESERVE ? ram_size - scratch_start - STACK_RESERVE : 0;
    struct compute_result result;
    if (compute_sieve(n, __image_end, scratch_size, &result) != 0) {
        tiny_puts("compute: n=");
        tiny_putu(n);
        tiny_puts(" needs more guest memory (raise --memory)\n");
        return 2;
    }
    tiny_puts("compute n="); tiny_putu(result.n);
    tiny_puts(" primes="); tiny_putu(result.primes);
    tiny_puts(" sum="); tiny_putu(result.sum);
    tiny_putc('\n');
    return 0;
}
