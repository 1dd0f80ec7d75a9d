/* spin: signals ready, then loops for ever. Only --timeout or a signal ends it. */
#include "tandem_guest_abi.h"
    .code64
    .section .text.start, "ax"
    .globl _start
_start:
    movw $TANDEM_PORT_READY, %dx
    movb $1, %al
    outb %al, %dx
1:  jmp 1b

/* No executable stack (silences ld's warning; the guests have no stack protection anyway). */
.section .note.GNU-stack,"",@progbits
