/*
 * tandem_guest_abi.h — the contract between a Tandem guest and the Tandem VMM.
 *
 * This header is the single definition of every port and register convention a guest may rely on.
 * It is included by the host (Swift imports these plain integer macros through the GuestABI target),
 * by the tiny bare guests (guest-images/tiny) and by tandem-init. docs/guest-abi.md explains it in prose.
 *
 * Only integer literal macros belong here: they are what Swift can import.
 */
#ifndef TANDEM_GUEST_ABI_H
#define TANDEM_GUEST_ABI_H

/* ---- Serial console: an 8250/16550-compatible UART, as on a PC's COM1. ---- */
#define TANDEM_COM1_BASE        0x3f8   /* eight registers, 0x3f8..0x3ff */
#define TANDEM_COM1_IRQ         4

/*
 * ---- Control ports (Tandem-specific; no PC device lives at 0x0500..0x0507). ----
 *
 * READY: the guest writes any value (8, 16 or 32 bits) once it is ready to run its workload. The VMM
 *   takes a host CLOCK_MONOTONIC timestamp at that exit: the "ready" of every start-latency figure
 *   (Firecracker's boot-timer device and Cloud Hypervisor's debug port 0x80 do the same job).
 *   Reading READY returns TANDEM_PORT_SIGNATURE in its low byte so a guest can tell it runs under
 *   Tandem (an absent ISA port reads as 0xff).
 * EXIT: the guest writes its exit status (the low 8 bits count, as for a process). The VMM stops
 *   every vCPU and exits with that status. QEMU's isa-debug-exit plays this role there.
 */
#define TANDEM_PORT_READY       0x0500
#define TANDEM_PORT_EXIT        0x0504
#define TANDEM_PORT_SIGNATURE   0x54    /* 'T' */

/*
 * ---- Tiny bare guests (flat binaries run by `tandem vm run --tiny`). ----
 *
 * The image is loaded at TANDEM_TINY_LOAD_ADDR and entered at its first byte.
 *  long mode (default): 64-bit, paging on, the first 4 GiB identity-mapped with 2 MiB pages (RAM
 *    below, unbacked addresses above it reach the VMM as MMIO), flat code/data segments,
 *    interrupts off, RSP = top of RAM, RDI = the host's --arg value, RSI = RAM size in bytes.
 *  RAM is at most TANDEM_TINY_MAX_RAM_MIB: it sits below the 32-bit MMIO hole, as on a PC.
 *  real mode: CS = DS = ES = SS = TANDEM_TINY_LOAD_ADDR >> 4, IP = 0, SP = 0xfff0,
 *    EDI = --arg (low 32 bits), ESI = RAM size (saturated to 32 bits).
 * HLT ends the run with status 0, unless EXIT was written first.
 */
#define TANDEM_TINY_LOAD_ADDR   0x10000

/* Guest physical layout the VMM uses for a tiny long-mode guest (all below the load address). */
#define TANDEM_TINY_GDT_ADDR    0x1000
#define TANDEM_TINY_PML4_ADDR   0x2000
#define TANDEM_TINY_PDPT_ADDR   0x3000
#define TANDEM_TINY_PD_ADDR     0x4000  /* four 4 KiB page directories, one per GiB: 0x4000..0x7fff */
#define TANDEM_TINY_MAX_RAM_MIB 3072    /* RAM ends below 0xc0000000 */

/*
 * virtio-mmio devices (virtio 1.x 4.2, version 2): disk N (the Nth --disk, from 0) has its
 * register window at TANDEM_VIRTIO_MMIO_BASE + N * TANDEM_VIRTIO_MMIO_STRIDE, in the 32-bit hole
 * above RAM, and interrupt line TANDEM_VIRTIO_IRQ_BASE + N (level-triggered).
 */
#define TANDEM_VIRTIO_MMIO_BASE    0xd0000000
#define TANDEM_VIRTIO_MMIO_STRIDE  0x1000
#define TANDEM_VIRTIO_MMIO_MAX     8
#define TANDEM_VIRTIO_IRQ_BASE     5

#endif
