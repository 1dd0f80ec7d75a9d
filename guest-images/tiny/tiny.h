/*
 * tiny.h — the runtime of Tandem's tiny bare guests: port I/O, a polling 8250 console driver and
 * the Tandem control ports. The port numbers come from the one definition the VMM uses too.
 */
#ifndef TANDEM_TINY_H
#define TANDEM_TINY_H

#include <stdint.h>
#include "tandem_guest_abi.h"

static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t value; __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port)); return value; }

#define UART_LSR 5
#define UART_LSR_THRE 0x20

static inline void tiny_putc(char c) {
    while (!(inb(TANDEM_COM1_BASE + UART_LSR) & UART_LSR_THRE)) { }
    outb(TANDEM_COM1_BASE, (uint8_t)c);
}

#define UART_FCR 2
#define UART_FCR_ENABLE_FIFO 0x01
#define UART_FIFO_SIZE 16

/* A string goes out as a 16550 driver sends it (Linux's 8250 driver too): with the FIFO on, once
 * THR is empty up to 16 bytes may be written before LSR is read again — one exit per byte plus
 * one per 16, instead of two per byte (each exit costs ~15 µs on emulated KVM). */
static inline void tiny_puts(const char *text) {
    static int fifo_enabled;
    if (!fifo_enabled) { outb(TANDEM_COM1_BASE + UART_FCR, UART_FCR_ENABLE_FIFO); fifo_enabled = 1; }
    while (*text) {
        while (!(inb(TANDEM_COM1_BASE + UART_LSR) & UART_LSR_THRE)) { }
        for (int sent = 0; sent < UART_FIFO_SIZE && *text; sent++) outb(TANDEM_COM1_BASE, (uint8_t)*text++);
    }
}

static inline void tiny_putu(uint64_t value) {
    char digits[21];
    int count = 0;
    do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value);
    while (count) tiny_putc(digits[--count]);
}

static inline void tiny_ready(void) { outb(TANDEM_PORT_READY, 1); }

/* Provided by start64.S: writes EXIT and halts. */
__attribute__((noreturn)) void tiny_exit(uint32_t status);

/* Every C guest defines this; start64.S calls it with RDI = --arg, RSI = RAM size and exits with
 * its return value. `end` is the first free byte after the image (linker symbol). */
int tiny_main(uint64_t argument, uint64_t ram_size);
extern uint8_t __image_end[];

#endif
