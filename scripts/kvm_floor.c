/* kvm_floor: the floor under a tiny microVM's launch on this host — the KVM calls no VMM can
 * leave out, in C, and nothing else. `scripts/bench_launch.py` runs it beside
 * `tandem vm run --tiny hello16` so the gap between the two is what Tandem itself costs.
 *
 *   kvm_floor IMAGE    runs a real-mode tiny guest (tandem_guest_abi.h: loaded at 0x10000,
 *                      CS = DS = ES = SS = 0x1000, IP = 0, SP = 0xfff0) in 16 MiB, answers COM1
 *                      (line status: always ready; bytes to stderr) and the READY and EXIT
 *                      ports, then prints {"monotonic_ns":{"ready":N}} and exits with the
 *                      guest's status. Like `tandem vm run` it leaves the VM's teardown to a
 *                      holder process sharing its memory and descriptors, so the status does not
 *                      wait for it.
 *
 * Not a VMM: no bounds on what the guest asks beyond the ports above, no signals, no timeout.
 * Build: cc -O2 -static -o kvm_floor kvm_floor.c (bench_launch.py does). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define RAM_BYTES (16u << 20)
#define LOAD_ADDR 0x10000u          /* TANDEM_TINY_LOAD_ADDR */
#define TSS_ADDR 0xfffbd000u        /* as Tandem: below 4 GiB, outside RAM */
#define COM1 0x3f8u
#define COM1_LSR (COM1 + 5)
#define LSR_THR_EMPTY 0x20u
#define PORT_READY 0x500u           /* TANDEM_PORT_READY */
#define PORT_EXIT 0x504u            /* TANDEM_PORT_EXIT */

static unsigned long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;
}

static void fail(const char *call) {
    perror(call);
    exit(125);
}

/* The holder: shares the VMM's memory and descriptor table, so the VM lives until it ends —
 * with its parent (PR_SET_PDEATHSIG), after the status has been collected. */
static char holder_stack[16384] __attribute__((aligned(16)));
static int hold(void *unused) {
    (void)unused;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) _exit(0);
    for (;;) pause();
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: kvm_floor IMAGE\n"); return 125; }
    unsigned char image[65536];
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(argv[1]);
    ssize_t length = read(fd, image, sizeof image);
    if (length <= 0) fail("read");
    close(fd);

    unsigned char *ram = mmap(NULL, RAM_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED) fail("mmap");
    memcpy(ram + LOAD_ADDR, image, (size_t)length);

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) fail("/dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) fail("KVM_CREATE_VM");
    if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0) fail("KVM_SET_TSS_ADDR");
    struct kvm_userspace_memory_region region = { .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_BYTES,
                                                  .userspace_addr = (unsigned long)ram };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) fail("KVM_SET_USER_MEMORY_REGION");
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) fail("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) fail("mmap kvm_run");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) fail("KVM_GET_SREGS");
    sregs.cs.selector = LOAD_ADDR >> 4;
    sregs.cs.base = LOAD_ADDR;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.cs;
    sregs.ds.type = sregs.es.type = sregs.fs.type = sregs.gs.type = sregs.ss.type = 3; /* data, read/write */
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) fail("KVM_SET_SREGS");
    struct kvm_regs regs = { .rip = 0, .rflags = 2, .rsp = 0xfff0 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) fail("KVM_SET_REGS");

    unsigned long long ready = 0;
    char line[256];
    size_t used = 0;
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) fail("KVM_RUN");
        if (run->exit_reason != KVM_EXIT_IO) { fprintf(stderr, "kvm_floor: exit reason %u\n", run->exit_reason); return 125; }
        unsigned char *data = (unsigned char *)run + run->io.data_offset;
        unsigned port = run->io.port;
        if (port == COM1 && run->io.direction == KVM_EXIT_IO_OUT) {
            if (used < sizeof line) line[used++] = (char)data[0];
            if (data[0] == '\n' || used == sizeof line) { (void)!write(2, line, used); used = 0; }
        } else if (port == COM1_LSR && run->io.direction == KVM_EXIT_IO_IN) {
            data[0] = LSR_THR_EMPTY;
        } else if (port == PORT_READY && !ready) {
            ready = now_ns();
        } else if (port == PORT_EXIT) {
            printf("{\"monotonic_ns\":{\"ready\":%llu}}\n", ready);
            fflush(stdout);
            close(1);
            close(2);
            if (clone(hold, holder_stack + sizeof holder_stack, CLONE_VM | CLONE_FILES, NULL) < 0) fail("clone");
            _exit(data[0]);
        }
    }
}
