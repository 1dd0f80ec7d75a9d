/* An OCI seccomp profile → BPF, through libseccomp (see cseccomp.h). */
#define _GNU_SOURCE
#include "cseccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failed(int code, char *error, size_t size, const char *what, const char *argument) {
    snprintf(error, size, "%s(%s): %s", what, argument ? argument : "", strerror(code < 0 ? -code : code));
    return code < 0 ? code : -code;
}

/* libseccomp refuses two comparisons of the same argument in one rule: such rules become one rule
 * per comparison (as runc does), which matches when any of them does. */
static int has_repeated_index(const struct cseccomp_rule *rule) {
    for (int i = 0; i < rule->argument_count; i++)
        for (int j = i + 1; j < rule->argument_count; j++)
            if (rule->arguments[i].index == rule->arguments[j].index) return 1;
    return 0;
}

static struct scmp_arg_cmp comparison(const struct cseccomp_argument *a) {
    struct scmp_arg_cmp c = { .arg = a->index, .op = (enum scmp_compare)a->op, .datum_a = a->value, .datum_b = a->value_two };
    return c;
}

int cseccomp_compile(uint32_t default_action, const char *const *architectures, int architecture_count,
                     const struct cseccomp_rule *rules, int rule_count,
                     void **program, size_t *length, int *unknown, char *error, size_t error_size) {
    *program = NULL;
    *length = 0;
    *unknown = 0;
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (!ctx) return failed(EINVAL, error, error_size, "seccomp_init", "defaultAction");
    int r;
    /* The runtime sets no_new_privs itself when the config asks; libseccomp must not force it. */
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) != 0) { seccomp_release(ctx); return failed(r, error, error_size, "seccomp_attr_set", "CTL_NNP"); }
    for (int i = 0; i < architecture_count; i++) {
        uint32_t arch = seccomp_arch_resolve_name(architectures[i]);
        if (arch == 0) { seccomp_release(ctx); return failed(EINVAL, error, error_size, "seccomp_arch_resolve_name", architectures[i]); }
        r = seccomp_arch_add(ctx, arch);
        if (r != 0 && r != -EEXIST) { seccomp_release(ctx); return failed(r, error, error_size, "seccomp_arch_add", architectures[i]); }
    }
    for (int i = 0; i < rule_count; i++) {
        const struct cseccomp_rule *rule = &rules[i];
        int number = seccomp_syscall_resolve_name(rule->name);
        if (number == __NR_SCMP_ERROR) { (*unknown)++; continue; }
        if (rule->action == default_action) continue;  /* libseccomp refuses a rule that changes nothing */
        if (rule->argument_count > 6) { seccomp_release(ctx); return failed(EINVAL, error, error_size, "seccomp_rule_add (more than 6 args)", rule->name); }
        if (has_repeated_index(rule)) {
            for (int a = 0; a < rule->argument_count; a++) {
                struct scmp_arg_cmp c = comparison(&rule->arguments[a]);
                r = seccomp_rule_add_array(ctx, rule->action, number, 1, &c);
                if (r != 0) { seccomp_release(ctx); return failed(r, error, error_size, "seccomp_rule_add", rule->name); }
            }
            continue;
        }
        struct scmp_arg_cmp c[6];
        for (int a = 0; a < rule->argument_count; a++) c[a] = comparison(&rule->arguments[a]);
        r = seccomp_rule_add_array(ctx, rule->action, number, (unsigned)rule->argument_count, c);
        if (r != 0) { seccomp_release(ctx); return failed(r, error, error_size, "seccomp_rule_add", rule->name); }
    }
    /* libseccomp writes the program to a descriptor: a memfd, read back into memory. */
    int fd = memfd_create("seccomp", MFD_CLOEXEC);
    if (fd < 0) { int saved = errno; seccomp_release(ctx); return failed(saved, error, error_size, "memfd_create", "seccomp"); }
    r = seccomp_export_bpf(ctx, fd);
    seccomp_release(ctx);
    if (r != 0) { close(fd); return failed(r, error, error_size, "seccomp_export_bpf", NULL); }
    off_t size = lseek(fd, 0, SEEK_END);
    void *bytes = size > 0 ? malloc((size_t)size) : NULL;
    if (!bytes || pread(fd, bytes, (size_t)size, 0) != size) {
        int saved = errno ? errno : EIO;
        free(bytes);
        close(fd);
        return failed(saved, error, error_size, "read", "seccomp program");
    }
    close(fd);
    *program = bytes;
    *length = (size_t)size / 8;  /* sizeof(struct sock_filter) */
    return 0;
}

int cseccomp_syscall_number(const char *name) {
    int number = seccomp_syscall_resolve_name(name);
    return number == __NR_SCMP_ERROR ? -1 : number;
}
