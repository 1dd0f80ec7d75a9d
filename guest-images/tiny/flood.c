/* flood: a hostile guest that writes to the console without end. */
#include "tiny.h"

int tiny_main(uint64_t argument, uint64_t ram_size) {
    (void)argument; (void)ram_size;
    tiny_ready();
    for (;;) tiny_puts("flood flood flood flood flood flood flood flood flood flood flood flood\n");
}
