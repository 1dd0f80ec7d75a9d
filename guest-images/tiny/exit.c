/* exit: hands --arg back as the exit status (tests the EXIT port end to end). */
#include "tiny.h"

int tiny_main(uint64_t status, uint64_t ram_size) {
    (void)ram_size;
    tiny_ready();
    tiny_puts("exiting with status ");
    tiny_putu(status & 0xff);
    tiny_putc('\n');
    return (int)(status & 0xff);
}
