/*
 * countdown.S — a complete bare-metal guest in 30 lines, to read and to copy.
 *
 * Build:  make -C examples          (gcc and binutils; writes examples/build/countdown.bin)
 * Run:    tandem vm run --tiny examples/build/countdown.bin --arg 5
 *
 * Tandem enters it in 64-bit long mode at its first byte, loaded at 0x10000, with RDI = --arg
 * (docs/guest-abi.md). It counts down on the serial console (COM1, 0x3f8), signals READY (0x500)
 * first, and hands back status 0 through EXIT (0x504). Only `out` instructions: every one of them
 * is a VM exit that Tandem's VMM answers.
 */
#include "tandem_guest_abi.h"

    .code64
    .globl _start
_start:
    movw $TANDEM_PORT_READY, %dx
    outb %al, %dx                     /* ready: the host timestamps this exit */
    movq %rdi, %rcx                   /* --arg: where to count down from (at most 9) */
    cmpq $9, %rcx
    jbe 1f
    movq $9, %rcx
1:  movw $TANDEM_COM1_BASE, %dx
    leal '0'(%ecx), %eax
    outb %al, %dx                     /* the digit */
    movb $'\n', %al
    outb %al, %dx
    decq %rcx
    jns 1b
    movw $TANDEM_PORT_EXIT, %dx
    xorl %eax, %eax
    outl %eax, %dx                    /* exit status 0: tandem exits 0 */
    hlt
