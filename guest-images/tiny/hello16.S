/* hello16: the hello guest in 16-bit real mode (CS = DS = load address >> 4, IP = 0). */
#include "tandem_guest_abi.h"
    .code16
    .section .text.start, "ax"
    .globl _start
_start:
    movw $TANDEM_PORT_READY, %dx
    movb $1, %al
    outb %al, %dx
    movw $message, %si
next:
    lodsb
    testb %al, %al
    jz done
    movb %al, %bl
wait:
    movw $(TANDEM_COM1_BASE + 5), %dx
    inb %dx, %al
    testb $0x20, %al
    jz wait
    movb %bl, %al
    movw $TANDEM_COM1_BASE, %dx
    outb %al, %dx
    jmp next
done:
    movw $TANDEM_PORT_EXIT, %dx
    xorl %eax, %eax
    outl %eax, %dx
1:  hlt
    jmp 1b
message:
    .asciz "Hello from a tiny Tandem microVM in real mode!\n"
