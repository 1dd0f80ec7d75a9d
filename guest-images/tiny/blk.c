/* blk: a virtio-blk driver in a tiny guest, written from the virtio 1.x spec (4.2 virtio-mmio,
 * 2.7 split virtqueues, 5.2 block), polling instead of taking interrupts. It drives the first
 * --disk of `tandem vm run --tiny blk --disk PATH`: checks the registers, negotiates VERSION_1,
 * sets up queue 0, then writes sector 1 with a pattern (unless --arg 1: read-only, expect IOERR),
 * reads sector 1 and sector 0 back, asks for the disk's id, and prints what it saw:
 *   blk: capacity=N id=ID write=S read=S sector0=XXXXXXXX match=yes|no
 * Exit status: 0 when every step did what the disk promised, else the step number that failed. */
#include "tiny.h"

#define REG(offset) (*(volatile uint32_t *)(uintptr_t)(TANDEM_VIRTIO_MMIO_BASE + (offset)))
#define QUEUE_SIZE 8

/* Guest RAM the driver uses (tiny guests run from 0x10000; 16 MiB of RAM by default). */
#define DESCRIPTORS 0x200000UL
#define AVAILABLE   0x201000UL
#define USED        0x202000UL
#define HEADER      0x203000UL
#define STATUS      0x203100UL
#define DATA        0x204000UL

struct descriptor { uint64_t address; uint32_t length; uint16_t flags; uint16_t next; };

static volatile struct descriptor *const table = (volatile struct descriptor *)DESCRIPTORS;
static volatile uint16_t *const available = (volatile uint16_t *)AVAILABLE;
static volatile uint16_t *const used = (volatile uint16_t *)USED;
static uint16_t next_available;

static void put_hex32(uint32_t value) {
    for (int shift = 28; shift >= 0; shift -= 4) tiny_putc("0123456789abcdef"[(value >> shift) & 15]);
}

/* One request: header (type, sector), `length` data bytes at DATA (device-writable for reads and
 * get-id), the status byte. Returns the status, or 0xff if the device never answered. */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t length, int device_writes) {
    volatile uint32_t *header = (volatile uint32_t *)HEADER;
    header[0] = type;
    header[1] = 0;
    *(volatile uint64_t *)(HEADER + 8) = sector;
    *(volatile uint8_t *)STATUS = 0xee;
    table[0] = (struct descriptor){ HEADER, 16, 1, 1 };
    table[1] = (struct descriptor){ DATA, length, (uint16_t)(1 | (device_writes ? 2 : 0)), 2 };
    table[2] = (struct descriptor){ STATUS, 1, 2, 0 };
    uint16_t before = used[1];
    available[2 + next_available % QUEUE_SIZE] = 0;
    next_available++;
    __asm__ volatile("" ::: "memory");
    available[1] = next_available;
    __asm__ volatile("" ::: "memory");
    REG(0x050) = 0;
    for (int spin = 0; spin < 1000000 && used[1] == before; spin++) { }
    return used[1] == before ? 0xff : *(volatile uint8_t *)STATUS;
}

int tiny_main(uint64_t argument, uint64_t ram_size) {
    (void)ram_size;
    int read_only = argument == 1;
    tiny_ready();
    if (REG(0x000) != 0x74726976 || REG(0x004) != 2) { tiny_puts("blk: no virtio-mmio device at the window\n"); return 1; }
    if (REG(0x008) != 2) { tiny_puts("blk: not a block device\n"); return 2; }
    REG(0x070) = 0;
    REG(0x070) = 1;
    REG(0x070) = 1 | 2;
    REG(0x014) = 1;
    if (!(REG(0x010) & 1)) { tiny_puts("blk: VERSION_1 not offered\n"); return 3; }
    REG(0x024) = 0; REG(0x020) = 0;
    REG(0x024) = 1; REG(0x020) = 1;
    REG(0x070) = 1 | 2 | 8;
    if (!(REG(0x070) & 8)) { tiny_puts("blk: FEATURES_OK refused\n"); return 4; }
    REG(0x030) = 0;
    if (REG(0x034) < QUEUE_SIZE) { tiny_puts("blk: queue too small\n"); return 5; }
    for (unsigned i = 0; i < 0x3000 / 4; i++) ((volatile uint32_t *)DESCRIPTORS)[i] = 0;
    REG(0x038) = QUEUE_SIZE;
    REG(0x080) = (uint32_t)DESCRIPTORS; REG(0x084) = 0;
    REG(0x090) = (uint32_t)AVAILABLE; REG(0x094) = 0;
    REG(0x0a0) = (uint32_t)USED; REG(0x0a4) = 0;
    REG(0x044) = 1;
    REG(0x070) = 1 | 2 | 8 | 4;
    if (REG(0x070) & 64) { tiny_puts("blk: the device needs a reset\n"); return 6; }
    uint32_t capacity = REG(0x100);

    volatile uint8_t *data = (volatile uint8_t *)DATA;
    for (int i = 0; i < 512; i++) data[i] = (uint8_t)(i * 7 + 3);
    uint8_t wrote = request(1, 1, 512, 0);
    for (int i = 0; i < 512; i++) data[i] = 0;
    uint8_t read = request(0, 1, 512, 1);
    int match = 1;
    for (int i = 0; i < 512; i++) if (data[i] != (uint8_t)(i * 7 + 3)) match = 0;
    uint8_t read0 = request(0, 0, 512, 1);
    uint32_t sector0 = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
    for (int i = 0; i < 20; i++) data[i] = 0;
    uint8_t id = request(8, 0, 20, 1);

    tiny_puts("blk: capacity="); tiny_putu(capacity);
    tiny_puts(" id="); for (int i = 0; i < 20 && data[i]; i++) tiny_putc((char)data[i]);
    tiny_puts(" write="); tiny_putu(wrote); tiny_puts(" read="); tiny_putu(read);
    tiny_puts(" sector0="); put_hex32(sector0);
    tiny_puts(" match="); tiny_puts(match ? "yes" : "no"); tiny_putc('\n');
    if (read0 != 0 || id != 0) return 7;
    if (read_only) return wrote == 1 && read == 0 && !match ? 0 : 8;
    return wrote == 0 && read == 0 && match ? 0 : 9;
}
