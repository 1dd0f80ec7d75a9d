/* echo: reads the console (polling the UART's data-ready bit) and echoes each key back in upper
 * case; `q` ends it with status 0. Shows that host terminal input reaches the guest. */
#include "tiny.h"

#define UART_LSR_DATA_READY 0x01

int tiny_main(uint64_t argument, uint64_t ram_size) {
    (void)argument; (void)ram_size;
    tiny_ready();
    tiny_puts("echo: type something, q quits\n");
    for (;;) {
        while (!(inb(TANDEM_COM1_BASE + UART_LSR) & UART_LSR_DATA_READY)) { }
        char c = (char)inb(TANDEM_COM1_BASE);
        if (c == 'q') break;
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        tiny_putc(c == '\r' ? '\n' : c);
    }
    tiny_puts("\necho: bye\n");
    return 0;
}
