/*
 * ckvm.h — the thin C shim between Swift and <linux/kvm.h>.
 *
 * Why it exists: KVM's ioctl request numbers are function-like macros (_IO, _IOW, _IOWR) that Swift
 * cannot import, so every ioctl Tandem issues gets one wrapper here. Each wrapper does exactly one
 * ioctl and returns its result (-1 with errno set on failure); policy, ownership and error messages
 * live in the Swift KVM target. The kvm_* structures themselves import into Swift directly.
 */
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdint.h>

/* ---- System (/dev/kvm) ---- */
/** KVM_GET_API_VERSION: must be 12 on every Linux since 2.6.22. */
int ckvm_get_api_version(int kvm_fd);
/** KVM_CHECK_EXTENSION: > 0 when a capability is present (some return a count or size). */
int ckvm_check_extension(int fd, int capability);
/** KVM_CREATE_VM with machine type 0 (the default x86 VM): returns the VM fd. */
int ckvm_create_vm(int kvm_fd);
/** KVM_GET_VCPU_MMAP_SIZE: bytes to mmap on a vCPU fd to reach its struct kvm_run. */
int ckvm_get_vcpu_mmap_size(int kvm_fd);
/** KVM_GET_SUPPORTED_CPUID: fills `cpuid` (nent entries available on input). */
int ckvm_get_supported_cpuid(int kvm_fd, struct kvm_cpuid2 *cpuid);

/* ---- VM ---- */
/** KVM_SET_USER_MEMORY_REGION: backs a guest-physical range with host memory. */
int ckvm_set_user_memory_region(int vm_fd, const struct kvm_userspace_memory_region *region);
/** KVM_SET_TSS_ADDR: Intel VMX needs three pages of guest-physical space for real-mode emulation. */
int ckvm_set_tss_addr(int vm_fd, uint64_t address);
/** KVM_SET_IDENTITY_MAP_ADDR: one page VMX uses for real-mode paging emulation. */
int ckvm_set_identity_map_addr(int vm_fd, uint64_t address);
/** KVM_CREATE_IRQCHIP: in-kernel PIC, IOAPIC and local APICs. */
int ckvm_create_irqchip(int vm_fd);
/** KVM_CREATE_PIT2: in-kernel i8254 timer (flags 0). */
int ckvm_create_pit2(int vm_fd);
/** KVM_IRQ_LINE: drive an interrupt line of the in-kernel irqchip. */
int ckvm_irq_line(int vm_fd, uint32_t irq, uint32_t level);
/** KVM_IOEVENTFD: a guest write of `len` bytes at `addr` (MMIO) signals eventfd `fd` inside the
 * kernel instead of exiting to userspace; with `datamatch`, only writes of that value do. */
int ckvm_ioeventfd(int vm_fd, uint64_t addr, uint32_t len, int fd, int has_datamatch, uint64_t datamatch);
/** KVM_IRQFD: writing eventfd `fd` injects GSI `gsi` (an edge: raised and lowered) without an ioctl. */
int ckvm_irqfd(int vm_fd, int fd, uint32_t gsi);
/** KVM_CREATE_VCPU: returns the vCPU fd; `id` becomes its APIC id. */
int ckvm_create_vcpu(int vm_fd, unsigned long id);

/* ---- vCPU ---- */
/** KVM_RUN: enter the guest until the next exit that needs userspace; -1/EINTR when kicked. */
int ckvm_run(int vcpu_fd);
int ckvm_get_regs(int vcpu_fd, struct kvm_regs *regs);
int ckvm_set_regs(int vcpu_fd, const struct kvm_regs *regs);
int ckvm_get_sregs(int vcpu_fd, struct kvm_sregs *sregs);
int ckvm_set_sregs(int vcpu_fd, const struct kvm_sregs *sregs);
int ckvm_set_cpuid2(int vcpu_fd, const struct kvm_cpuid2 *cpuid);
/** KVM_SET_MSRS: returns how many MSRs were set (less than asked means the next one failed). */
int ckvm_set_msrs(int vcpu_fd, const struct kvm_msrs *msrs);
int ckvm_set_fpu(int vcpu_fd, const struct kvm_fpu *fpu);
int ckvm_set_lapic(int vcpu_fd, const struct kvm_lapic_state *lapic);
int ckvm_get_lapic(int vcpu_fd, struct kvm_lapic_state *lapic);

/* ---- Kicking a vCPU out of KVM_RUN ----
 * The KVM API's way to stop a vCPU thread that sits in KVM_RUN: set kvm_run.immediate_exit (so a
 * thread about to enter returns at once) and send that thread a signal whose handler does nothing
 * (so a thread already inside returns with EINTR). Installing an async-signal handler is C's job. */
/** The signal used for kicks (SIGRTMIN + 1); installs its empty, non-restarting handler once. */
int ckvm_kick_signal(void);
/** Unblocks the kick signal in the calling (vCPU) thread. A thread inherits its creator's mask, and
 * launchers often start programs with signals blocked; a vCPU thread that blocks the kick would
 * never leave KVM_RUN. */
int ckvm_unblock_kick_signal(void);
/** Sets run->immediate_exit and signals `thread`; returns pthread_kill's result. */
int ckvm_kick(struct kvm_run *run, pthread_t thread);
/** KVM_SET_SIGNAL_MASK: the calling thread's mask without `signals`, as the mask in force while
 * this vCPU is inside KVM_RUN. Those signals stay blocked (and pending, readable from a signalfd)
 * everywhere else, but one that is pending or arrives makes KVM_RUN return EINTR — how the thread
 * that runs vCPU 0 also notices SIGINT, SIGTERM or its timeout's timer without a second thread
 * (QEMU's SIG_IPI works the same way). struct kvm_signal_mask ends in a flexible array: C's job. */
int ckvm_set_signal_mask_unblocking(int vcpu_fd, const int *signals, int count);

/* ---- struct kvm_run helpers ---- */
/** Pointer to the data of a KVM_EXIT_IO exit (it lives at run + io.data_offset). */
static inline uint8_t *ckvm_io_data(struct kvm_run *run) {
    return (uint8_t *)run + run->io.data_offset;
}

/** Pointer to the 8 data bytes of a KVM_EXIT_MMIO exit. */
static inline uint8_t *ckvm_mmio_data(struct kvm_run *run) { return run->mmio.data; }

/* ---- Saving and restoring a VM (snapshots) ----
 * A snapshot stores KVM's per-vCPU and per-VM state as the kernel hands it out: each kind below is
 * one fixed-size structure of <linux/kvm.h> read with its KVM_GET_* ioctl and written back with its
 * KVM_SET_* twin. One pair of functions covers them all (the request numbers are macros Swift
 * cannot import); the Swift side stores each blob with its size and refuses one whose size differs
 * from this build's structure. */
enum ckvm_state_kind {
    CKVM_STATE_REGS = 1,        /* struct kvm_regs, vCPU */
    CKVM_STATE_SREGS = 2,       /* struct kvm_sregs, vCPU */
    CKVM_STATE_XCRS = 3,        /* struct kvm_xcrs, vCPU */
    CKVM_STATE_MP_STATE = 4,    /* struct kvm_mp_state, vCPU */
    CKVM_STATE_VCPU_EVENTS = 5, /* struct kvm_vcpu_events, vCPU */
    CKVM_STATE_DEBUGREGS = 6,   /* struct kvm_debugregs, vCPU */
    CKVM_STATE_LAPIC = 7,       /* struct kvm_lapic_state, vCPU (in-kernel irqchip only) */
    CKVM_STATE_CLOCK = 8,       /* struct kvm_clock_data, VM */
    CKVM_STATE_PIT2 = 9,        /* struct kvm_pit_state2, VM (in-kernel PIT only) */
    CKVM_STATE_PIC_MASTER = 10, /* struct kvm_irqchip with chip_id KVM_IRQCHIP_PIC_MASTER, VM */
    CKVM_STATE_PIC_SLAVE = 11,  /* struct kvm_irqchip, KVM_IRQCHIP_PIC_SLAVE, VM */
    CKVM_STATE_IOAPIC = 12,     /* struct kvm_irqchip, KVM_IRQCHIP_IOAPIC, VM */
};
/** The size of a kind's structure (0 for an unknown kind). */
size_t ckvm_state_size(int kind);
/** KVM_GET_* of `kind` into `buffer` (ckvm_state_size bytes); -1 with errno on failure. */
int ckvm_get_state(int fd, int kind, void *buffer);
/** KVM_SET_* of `kind` from `buffer`. The clock's flags are cleared first (KVM_SET_CLOCK takes
 * only KVM_CLOCK_REALTIME among them, and a saved one must not ask for it). */
int ckvm_set_state(int fd, int kind, void *buffer);

/** The guest FPU/SSE/AVX state's size on this host: KVM_CAP_XSAVE2's answer (it grows with AMX),
 * at least struct kvm_xsave's 4096 bytes. A snapshot taken where it differs does not restore. */
int ckvm_xsave_size(int kvm_fd);
/** KVM_GET_XSAVE (or KVM_GET_XSAVE2 when `size` exceeds 4096) into `buffer` of `size` bytes. */
int ckvm_get_xsave(int vcpu_fd, void *buffer, int size);
int ckvm_set_xsave(int vcpu_fd, const void *buffer);
/** The host CPU's CPUID `leaf`.`subleaf` into out[0..3] = EAX, EBX, ECX, EDX (Swift has no cpuid
 * intrinsic). A snapshot records the host's vendor and feature bits with it: ~4 µs a leaf here,
 * where KVM_GET_SUPPORTED_CPUID costs ~0.3 ms on a restore's critical path. */
void ckvm_host_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]);
/** KVM_GET_MSR_INDEX_LIST on /dev/kvm: at most `capacity` indices into `indices`; returns how many
 * there are (more than capacity: call again with room), -1 on failure. */
int ckvm_msr_index_list(int kvm_fd, uint32_t *indices, uint32_t capacity);
/** KVM_GET_MSRS: returns how many of `msrs` were read (they stop at the first KVM refuses). */
int ckvm_get_msrs(int vcpu_fd, struct kvm_msrs *msrs);
/** KVM_GET_CPUID2 on a vCPU: what KVM_SET_CPUID2 gave it (nent 0 when never set). E2BIG: more room. */
int ckvm_get_cpuid2(int vcpu_fd, struct kvm_cpuid2 *cpuid);

/* Allocation helpers for the flexible-array structures Swift cannot size. */
struct kvm_cpuid2 *ckvm_cpuid2_alloc(uint32_t entries);
/** The flexible array member entries[] (Swift does not import flexible arrays). */
static inline struct kvm_cpuid_entry2 *ckvm_cpuid2_entries(struct kvm_cpuid2 *cpuid) { return cpuid->entries; }
struct kvm_msrs *ckvm_msrs_alloc(uint32_t entries);
static inline struct kvm_msr_entry *ckvm_msrs_entries(struct kvm_msrs *msrs) { return msrs->entries; }

#endif
