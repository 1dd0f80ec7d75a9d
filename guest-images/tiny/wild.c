/* wild: a hostile guest that reads and writes random I/O ports and unbacked MMIO addresses, then
 * reports and exits 0. The VMM must answer harmlessly and count them. It leaves the console,
 * the control ports and the PC's reset/A20 ports alone. */
#include "tiny.h"

static uint64_t state = 0x9e3779b97f4a7c15ULL;
static uint64_t next(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

int tiny_main(uint64_t argument, uint64_t ram_size) {
    (void)argument; (void)ram_size;
    tiny_ready();
    unsigned ports = 0, mmio = 0, floating = 0;
    for (int i = 0; i < 200; i++) {
        uint16_t port = (uint16_t)next();
        if ((port >= TANDEM_COM1_BASE && port < TANDEM_COM1_BASE + 8) || (port >= TANDEM_PORT_READY && port < TANDEM_PORT_READY + 8)
            || port == 0x64 || port == 0x92 || port == 0xcf9) continue;
        outb(port, (uint8_t)next());
        if (inb(port) == 0xff) floating++;
        ports++;
    }
    for (int i = 0; i < 50; i++) {
        /* Unbacked addresses in the 32-bit hole above RAM (0xc0000000..0xffffffff). */
        volatile uint32_t *address = (volatile uint32_t *)(0xc0000000ULL + ((next() & 0x3fffffffULL) & ~3ULL));
        *address = (uint32_t)next();
        (void)*address;
        mmio++;
    }
    tiny_puts("wild: touched "); tiny_putu(ports); tiny_puts(" ports ("); tiny_putu(floating);
    tiny_puts(" read 0xff) and "); tiny_putu(mmio); tiny_puts(" MMIO addresses\n");
    return 0;
}
