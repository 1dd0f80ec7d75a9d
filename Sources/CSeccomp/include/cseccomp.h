/*
 * cseccomp.h — compiles an OCI seccomp profile into a classic BPF program with libseccomp, in the
 * runtime (parent) process. The container's child only loads the finished program (one seccomp(2)
 * call, clinux_container.h), so libseccomp never runs between clone and exec. Its own headers are
 * kept out of Swift: the action and operator numbers are passed as plain integers (the SCMP_*
 * values, which are part of libseccomp's ABI).
 */
#ifndef CSECCOMP_H
#define CSECCOMP_H

#include <stddef.h>
#include <stdint.h>

struct cseccomp_argument {
    unsigned index;       /* 0-5 */
    uint64_t value, value_two;
    int op;               /* enum scmp_compare: 1 NE, 2 LT, 3 LE, 4 EQ, 5 GE, 6 GT, 7 MASKED_EQ */
};

struct cseccomp_rule {
    const char *name;     /* a syscall name; unknown to this libseccomp: skipped, counted */
    uint32_t action;      /* SCMP_ACT_* value */
    const struct cseccomp_argument *arguments;
    int argument_count;
};

/**
 * Builds the filter. `architectures` are libseccomp names ("x86_64", "x86", "x32"). On success
 * returns 0 and a malloc'd program in *program (struct sock_filter[], *length entries) and the
 * number of rules naming syscalls this libseccomp does not know in *unknown. On failure returns
 * -errno and writes what failed to `error` (e.g. "seccomp_rule_add(mount)").
 */
int cseccomp_compile(uint32_t default_action, const char *const *architectures, int architecture_count,
                     const struct cseccomp_rule *rules, int rule_count,
                     void **program, size_t *length, int *unknown, char *error, size_t error_size);

/** The syscall number of `name` on this host's architecture, or -1 (for tests and `features`). */
int cseccomp_syscall_number(const char *name);

#endif
