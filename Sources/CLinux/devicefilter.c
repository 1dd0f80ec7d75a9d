/*
 * cgroup v2 has no devices.allow/deny files: device access is decided by an eBPF program of type
 * BPF_PROG_TYPE_CGROUP_DEVICE attached to the cgroup (Documentation/admin-guide/cgroup-v2.rst,
 * "Device controller"). This writes one from OCI device rules — the same last-match-wins list
 * cgroup v1 gets — and attaches it. Swift cannot build struct bpf_insn bit fields, hence C.
 */
#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })

static int failed(char *error, size_t size, const char *what, const char *argument) {
    int saved = errno;
    snprintf(error, size, "%s(%s): %s", what, argument ? argument : "", strerrorname_np(saved) ? strerrorname_np(saved) : "error");
    return -saved;
}

int clinux_device_filter_attach(const char *cgroup, const struct clinux_device_rule *rules, int count,
                                char *error, size_t error_size) {
    /* Header (6) + per rule at most 7 + default (2). */
    size_t capacity = 8 + (size_t)count * 7;
    struct bpf_insn *program = calloc(capacity, sizeof *program);
    if (!program) return failed(error, error_size, "calloc", "device filter");
    size_t n = 0;
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, 0, 0);   /* r2 = access_type */
    program[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xFFFF);        /* r2 = device type */
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, 0, 0);
    program[n++] = INSN(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);            /* r3 = access wanted */
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, 4, 0);   /* r4 = major */
    program[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, 8, 0);   /* r5 = minor */
    /* The last matching rule decides: test the rules from the last to the first. */
    for (int i = count - 1; i >= 0; i--) {
        const struct clinux_device_rule *r = &rules[i];
        /* This rule's length: its checks, then "r0 = verdict; exit". A failed check jumps past it. */
        size_t start = n;
        size_t length = (r->type != 'a') + (r->access != 7 ? 3 : 0) + (r->major >= 0) + (r->minor >= 0) + 2;
#define NEXT_RULE ((short)(start + length - n - 1))
        if (r->type != 'a') {
            program[n] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, NEXT_RULE, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
            n++;
        }
        if (r->access != 7) {
            /* Every access wanted must be in the rule's: (wanted & ~rule) == 0. */
            program[n++] = INSN(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
            program[n++] = INSN(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, ~r->access & 7);
            program[n] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, NEXT_RULE, 0);
            n++;
        }
        if (r->major >= 0) { program[n] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, NEXT_RULE, (int)r->major); n++; }
        if (r->minor >= 0) { program[n] = INSN(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, NEXT_RULE, (int)r->minor); n++; }
#undef NEXT_RULE
        program[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0);
        program[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
        /* A rule without checks ("a *:* rwm") decides everything: what follows would be
         * unreachable, which the verifier refuses. */
        if (length == 2) goto done;
    }
    /* No rule matched: allowed, as without a program (a config denies by its first rule, "a"). */
    program[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
    program[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
done:;

    union bpf_attr load;
    memset(&load, 0, sizeof load);
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (unsigned long)program;
    load.insn_cnt = (unsigned)n;
    load.license = (unsigned long)"Apache";
    int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    if (prog < 0) {
        /* Again with the verifier's log, only to say why. */
        int saved = errno;
        static char log[16384];
        log[0] = 0;
        load.log_buf = (unsigned long)log;
        load.log_size = sizeof log;
        load.log_level = 1;
        int again = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
        if (again >= 0) close(again);
        char *last = strrchr(log, '\n');
        while (last && last > log && last[1] == 0) { *last = 0; last = strrchr(log, '\n'); }
        snprintf(error, error_size, "bpf(BPF_PROG_LOAD, device filter): %s%s%.200s", strerrorname_np(saved) ? strerrorname_np(saved) : "error",
                 log[0] ? ": " : "", last ? last + 1 : log);
        free(program);
        return -saved;
    }
    free(program);
    int directory = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory < 0) { int r = failed(error, error_size, "open", cgroup); close(prog); return r; }
    union bpf_attr attach;
    memset(&attach, 0, sizeof attach);
    attach.target_fd = (unsigned)directory;
    attach.attach_bpf_fd = (unsigned)prog;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    int result = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof attach);
    int r = result == 0 ? 0 : failed(error, error_size, "bpf(BPF_PROG_ATTACH)", cgroup);
    close(directory);
    close(prog);  /* the attachment holds the program; it goes with the cgroup */
    return r;
}
