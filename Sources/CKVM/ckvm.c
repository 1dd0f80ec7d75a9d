/* ckvm.c — one ioctl per function; see ckvm.h for why this file exists. */
#include "ckvm.h"

#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

int ckvm_get_api_version(int kvm_fd) { return ioctl(kvm_fd, KVM_GET_API_VERSION, 0); }
int ckvm_check_extension(int fd, int capability) { return ioctl(fd, KVM_CHECK_EXTENSION, capability); }
int ckvm_create_vm(int kvm_fd) { return ioctl(kvm_fd, KVM_CREATE_VM, 0UL); }
int ckvm_get_vcpu_mmap_size(int kvm_fd) { return ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0); }
int ckvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 *cpuid) {
    return ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid);
}

int ckvm_set_user_memory_region(int vm_fd, const struct kvm_userspace_memory_region *region) {
    return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, region);
}
int ckvm_set_tss_addr(int vm_fd, uint64_t address) {
    return ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)address);
}
int ckvm_set_identity_map_addr(int vm_fd, uint64_t address) {
    return ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &address);
}
int ckvm_create_irqchip(int vm_fd) { return ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0); }
int ckvm_create_pit2(int vm_fd) {
    struct kvm_pit_config config;
    memset(&config, 0, sizeof config);
    return ioctl(vm_fd, KVM_CREATE_PIT2, &config);
}
int ckvm_irq_line(int vm_fd, uint32_t irq, uint32_t level) {
    struct kvm_irq_level line = { .irq = irq, .level = level };
    return ioctl(vm_fd, KVM_IRQ_LINE, &line);
}
int ckvm_ioeventfd(int vm_fd, uint64_t addr, uint32_t len, int fd, int has_datamatch, uint64_t datamatch) {
    struct kvm_ioeventfd event;
    memset(&event, 0, sizeof event);
    event.addr = addr;
    event.len = len;
    event.fd = fd;
    if (has_datamatch) {
        event.flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
        event.datamatch = datamatch;
    }
    return ioctl(vm_fd, KVM_IOEVENTFD, &event);
}
int ckvm_irqfd(int vm_fd, int fd, uint32_t gsi) {
    struct kvm_irqfd irqfd;
    memset(&irqfd, 0, sizeof irqfd);
    irqfd.fd = (uint32_t)fd;
    irqfd.gsi = gsi;
    return ioctl(vm_fd, KVM_IRQFD, &irqfd);
}
int ckvm_create_vcpu(int vm_fd, unsigned long id) { return ioctl(vm_fd, KVM_CREATE_VCPU, id); }

int ckvm_run(int vcpu_fd) { return ioctl(vcpu_fd, KVM_RUN, 0); }
int ckvm_get_regs(int vcpu_fd, struct kvm_regs *regs) { return ioctl(vcpu_fd, KVM_GET_REGS, regs); }
int ckvm_set_regs(int vcpu_fd, const struct kvm_regs *regs) { return ioctl(vcpu_fd, KVM_SET_REGS, regs); }
int ckvm_get_sregs(int vcpu_fd, struct kvm_sregs *sregs) { return ioctl(vcpu_fd, KVM_GET_SREGS, sregs); }
int ckvm_set_sregs(int vcpu_fd, const struct kvm_sregs *sregs) { return ioctl(vcpu_fd, KVM_SET_SREGS, sregs); }
int ckvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid2 *cpuid) { return ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid); }
int ckvm_set_msrs(int vcpu_fd, const struct kvm_msrs *msrs) { return ioctl(vcpu_fd, KVM_SET_MSRS, msrs); }
int ckvm_set_fpu(int vcpu_fd, const struct kvm_fpu *fpu) { return ioctl(vcpu_fd, KVM_SET_FPU, fpu); }
int ckvm_set_lapic(int vcpu_fd, const struct kvm_lapic_state *lapic) { return ioctl(vcpu_fd, KVM_SET_LAPIC, lapic); }
int ckvm_get_lapic(int vcpu_fd, struct kvm_lapic_state *lapic) { return ioctl(vcpu_fd, KVM_GET_LAPIC, lapic); }

static void ckvm_kick_handler(int signo) { (void)signo; }

int ckvm_kick_signal(void) {
    static int installed;
    int signo = SIGRTMIN + 1;
    if (!__atomic_exchange_n(&installed, 1, __ATOMIC_SEQ_CST)) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = ckvm_kick_handler;   /* no SA_RESTART: KVM_RUN must return EINTR */
        sigemptyset(&action.sa_mask);
        sigaction(signo, &action, NULL);
    }
    return signo;
}

int ckvm_unblock_kick_signal(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, ckvm_kick_signal());
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int ckvm_kick(struct kvm_run *run, pthread_t thread) {
    __atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    return pthread_kill(thread, ckvm_kick_signal());
}

int ckvm_set_signal_mask_unblocking(int vcpu_fd, const int *signals, int count) {
    sigset_t mask;
    if (pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0) return -1;
    for (int index = 0; index < count; index++) sigdelset(&mask, signals[index]);
    /* The kernel's sigset is 8 bytes on x86-64 (glibc's sigset_t is 128): copy the first 8. */
    enum { kernel_sigset_bytes = 8 };
    _Alignas(struct kvm_signal_mask) unsigned char buffer[sizeof(struct kvm_signal_mask) + kernel_sigset_bytes];
    struct kvm_signal_mask *argument = (struct kvm_signal_mask *)buffer;
    argument->len = kernel_sigset_bytes;
    memcpy(argument->sigset, &mask, kernel_sigset_bytes);
    return ioctl(vcpu_fd, KVM_SET_SIGNAL_MASK, argument);
}

struct kvm_cpuid2 *ckvm_cpuid2_alloc(uint32_t entries) {
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + entries * sizeof(struct kvm_cpuid_entry2));
    if (cpuid) cpuid->nent = entries;
    return cpuid;
}

struct kvm_msrs *ckvm_msrs_alloc(uint32_t entries) {
    struct kvm_msrs *msrs = calloc(1, sizeof *msrs + entries * sizeof(struct kvm_msr_entry));
    if (msrs) msrs->nmsrs = entries;
    return msrs;
}

size_t ckvm_state_size(int kind) {
    switch (kind) {
    case CKVM_STATE_REGS: return sizeof(struct kvm_regs);
    case CKVM_STATE_SREGS: return sizeof(struct kvm_sregs);
    case CKVM_STATE_XCRS: return sizeof(struct kvm_xcrs);
    case CKVM_STATE_MP_STATE: return sizeof(struct kvm_mp_state);
    case CKVM_STATE_VCPU_EVENTS: return sizeof(struct kvm_vcpu_events);
    case CKVM_STATE_DEBUGREGS: return sizeof(struct kvm_debugregs);
    case CKVM_STATE_LAPIC: return sizeof(struct kvm_lapic_state);
    case CKVM_STATE_CLOCK: return sizeof(struct kvm_clock_data);
    case CKVM_STATE_PIT2: return sizeof(struct kvm_pit_state2);
    case CKVM_STATE_PIC_MASTER: case CKVM_STATE_PIC_SLAVE: case CKVM_STATE_IOAPIC: return sizeof(struct kvm_irqchip);
    default: return 0;
    }
}

static int ckvm_irqchip_id(int kind) {
    return kind == CKVM_STATE_PIC_MASTER ? KVM_IRQCHIP_PIC_MASTER : kind == CKVM_STATE_PIC_SLAVE ? KVM_IRQCHIP_PIC_SLAVE : KVM_IRQCHIP_IOAPIC;
}

int ckvm_get_state(int fd, int kind, void *buffer) {
    switch (kind) {
    case CKVM_STATE_REGS: return ioctl(fd, KVM_GET_REGS, buffer);
    case CKVM_STATE_SREGS: return ioctl(fd, KVM_GET_SREGS, buffer);
    case CKVM_STATE_XCRS: return ioctl(fd, KVM_GET_XCRS, buffer);
    case CKVM_STATE_MP_STATE: return ioctl(fd, KVM_GET_MP_STATE, buffer);
    case CKVM_STATE_VCPU_EVENTS: return ioctl(fd, KVM_GET_VCPU_EVENTS, buffer);
    case CKVM_STATE_DEBUGREGS: return ioctl(fd, KVM_GET_DEBUGREGS, buffer);
    case CKVM_STATE_LAPIC: return ioctl(fd, KVM_GET_LAPIC, buffer);
    case CKVM_STATE_CLOCK: return ioctl(fd, KVM_GET_CLOCK, buffer);
    case CKVM_STATE_PIT2: return ioctl(fd, KVM_GET_PIT2, buffer);
    case CKVM_STATE_PIC_MASTER: case CKVM_STATE_PIC_SLAVE: case CKVM_STATE_IOAPIC:
        memset(buffer, 0, sizeof(struct kvm_irqchip));
        ((struct kvm_irqchip *)buffer)->chip_id = (uint32_t)ckvm_irqchip_id(kind);
        return ioctl(fd, KVM_GET_IRQCHIP, buffer);
    default: errno = EINVAL; return -1;
    }
}

int ckvm_set_state(int fd, int kind, void *buffer) {
    switch (kind) {
    case CKVM_STATE_REGS: return ioctl(fd, KVM_SET_REGS, buffer);
    case CKVM_STATE_SREGS: return ioctl(fd, KVM_SET_SREGS, buffer);
    case CKVM_STATE_XCRS: return ioctl(fd, KVM_SET_XCRS, buffer);
    case CKVM_STATE_MP_STATE: return ioctl(fd, KVM_SET_MP_STATE, buffer);
    case CKVM_STATE_VCPU_EVENTS: return ioctl(fd, KVM_SET_VCPU_EVENTS, buffer);
    case CKVM_STATE_DEBUGREGS: return ioctl(fd, KVM_SET_DEBUGREGS, buffer);
    case CKVM_STATE_LAPIC: return ioctl(fd, KVM_SET_LAPIC, buffer);
    case CKVM_STATE_CLOCK:
        ((struct kvm_clock_data *)buffer)->flags = 0;
        return ioctl(fd, KVM_SET_CLOCK, buffer);
    case CKVM_STATE_PIT2: return ioctl(fd, KVM_SET_PIT2, buffer);
    case CKVM_STATE_PIC_MASTER: case CKVM_STATE_PIC_SLAVE: case CKVM_STATE_IOAPIC:
        ((struct kvm_irqchip *)buffer)->chip_id = (uint32_t)ckvm_irqchip_id(kind);
        return ioctl(fd, KVM_SET_IRQCHIP, buffer);
    default: errno = EINVAL; return -1;
    }
}

int ckvm_xsave_size(int kvm_fd) {
    int size = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
    return size > (int)sizeof(struct kvm_xsave) ? size : (int)sizeof(struct kvm_xsave);
}

int ckvm_get_xsave(int vcpu_fd, void *buffer, int size) {
    return ioctl(vcpu_fd, size > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, buffer);
}

int ckvm_set_xsave(int vcpu_fd, const void *buffer) { return ioctl(vcpu_fd, KVM_SET_XSAVE, buffer); }

int ckvm_msr_index_list(int kvm_fd, uint32_t *indices, uint32_t capacity) {
    struct kvm_msr_list *list = calloc(1, sizeof *list + capacity * sizeof(uint32_t));
    if (!list) { errno = ENOMEM; return -1; }
    list->nmsrs = capacity;
    int result = ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, list);
    if (result == 0) {
        memcpy(indices, list->indices, capacity * sizeof(uint32_t));
        result = (int)list->nmsrs;
    } else if (errno == E2BIG) {
        result = (int)list->nmsrs;
    }
    free(list);
    return result;
}

int ckvm_get_msrs(int vcpu_fd, struct kvm_msrs *msrs) { return ioctl(vcpu_fd, KVM_GET_MSRS, msrs); }
int ckvm_get_cpuid2(int vcpu_fd, struct kvm_cpuid2 *cpuid) { return ioctl(vcpu_fd, KVM_GET_CPUID2, cpuid); }

void ckvm_host_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
    __cpuid_count(leaf, subleaf, out[0], out[1], out[2], out[3]);
}
