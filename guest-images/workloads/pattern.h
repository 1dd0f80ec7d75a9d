/*
 * The data pattern the I/O workloads write and check (blkio on a disk, netio over TCP): 1 MiB
 * blocks of xorshift64 output, block N seeded from N, so any block can be made on its own and
 * the host can make the same bytes (`netio pattern MiB`, or blkio on a host file) to compare.
 */
#ifndef TANDEM_PATTERN_H
#define TANDEM_PATTERN_H
#include <stddef.h>
#include <stdint.h>

#define PATTERN_BLOCK (1 << 20)

static inline void pattern_block(uint64_t *block, long index) {
    uint64_t state = 0x9e3779b97f4a7c15ull ^ (uint64_t)(index + 1) * 0xbf58476d1ce4e5b9ull;
    for (size_t i = 0; i < PATTERN_BLOCK / sizeof *block; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block[i] = state;
    }
}
#endif
