/* start64.S — entry of a 64-bit tiny guest. The VMM enters here in long mode with RSP at the top
 * of RAM, RDI = --arg, RSI = RAM size (tandem_guest_abi.h). */
#include "tandem_guest_abi.h"

    .code64
    .section .text.start, "ax"
    .globl _start
_start:
    andq $-16, %rsp
    call tiny_main
    movl %eax, %edi
    /* fall through */
    .globl tiny_exit
tiny_exit:
    movl %edi, %eax
    movw $TANDEM_PORT_EXIT, %dx
    outl %eax, %dx
1:  hlt
    jmp 1b

/* No executable stack (silences ld's warning; the guests have no stack protection anyway). */
.section .note.GNU-stack,"",@progbits
