/* triplefault: an invalid instruction with no IDT. #UD cannot be delivered, nor can the #DF that
 * follows: the CPU shuts down (KVM_EXIT_SHUTDOWN), which the VMM must report, not survive silently. */
    .code64
    .section .text.start, "ax"
    .globl _start
_start:
    ud2

/* No executable stack (silences ld's warning; the guests have no stack protection anyway). */
.section .note.GNU-stack,"",@progbits
