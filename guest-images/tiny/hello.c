/* hello: the smallest useful guest — ready, one line, exit 0. */
#include "tiny.h"

int tiny_main(uint64_t argument, uint64_t ram_size) {
    (void)argument; (void)ram_size;
    tiny_ready();
    tiny_puts("Hello from a tiny Tandem microVM!\n");
    return 0;
}
