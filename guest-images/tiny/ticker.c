/* ticker: --arg ticks (default 2000), each a little work on a 64-bit state (an LCG) followed by a
 * READY signal, a progress line every 500, and last a checksum of all the work. The guest to
 * pause, snapshot and restore mid-run: a restored run must end with the checksum of an unbroken
 * one, and each tick's READY is a "next ready" for a restored guest. */
#include "tiny.h"

#define DEFAULT_TICKS 2000
#define STEPS_PER_TICK 200
#define PROGRESS_EVERY 500

int tiny_main(uint64_t ticks, uint64_t ram_size) {
    (void)ram_size;
    if (ticks == 0) ticks = DEFAULT_TICKS;
    /* volatile: the work stays a loop (a compiler could fold the LCG's steps into one). */
    volatile uint64_t state = 0x9e3779b97f4a7c15ull;
    for (uint64_t tick = 1; tick <= ticks; tick++) {
        for (int step = 0; step < STEPS_PER_TICK; step++) state = state * 6364136223846793005ull + 1442695040888963407ull;
        tiny_ready();
        if (tick % PROGRESS_EVERY == 0) { tiny_puts("tick "); tiny_putu(tick); tiny_putc('\n'); }
    }
    tiny_puts("ticker: "); tiny_putu(ticks); tiny_puts(" ticks, checksum "); tiny_putu(state); tiny_putc('\n');
    return 0;
}
