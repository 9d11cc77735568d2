/*
 * exit_bench: the C baseline for Panamax's vCPU exit round trip (scripts/bench, ExitBench.java).
 *
 * The same VM as ExitBench builds on Panamax's KvmVm/KvmVcpu (KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR,
 * KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2, 0xd0000 bytes of RAM at guest-physical 0, one vCPU in real mode at
 * 0:0x1000) runs the same 16-bit guest: N `out dx, al` to port 0x510, one out to 0x511 (timestamp), N byte
 * writes to unbacked guest-physical 0xd0000 (KVM_EXIT_MMIO), one out to 0x512 (stop). The KVM_RUN loop
 * decodes each exit as a VMM would (port/size/direction, or address/length/data) and goes on.
 *
 * Usage: exit_bench N REPS; prints one line per rep:
 *   BENCH exits-c rep=R port_ns=<ns per port exit> mmio_ns=<ns per MMIO exit>
 * Built by scripts/bench with gcc; benchmark code only, never part of the product.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM 0xd0000UL
#define CODE 0x1000UL

static void die(const char *what) {
    perror(what);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t) t.tv_sec * 1000000000ULL + t.tv_nsec;
}

/* The guest: kept byte for byte equal to ExitBench.program(n). */
static size_t program(uint8_t *p, uint32_t n) {
    uint8_t code[] = {
        0x31, 0xc0,                         /* xor ax, ax */
        0x8e, 0xd8,                         /* mov ds, ax */
        0xba, 0x10, 0x05,                   /* mov dx, 0x510 */
        0x66, 0xb9, 0, 0, 0, 0,             /* mov ecx, N        (offset 9) */
        0xee,                               /* 1: out dx, al */
        0x66, 0x49,                         /* dec ecx */
        0x75, 0xfb,                         /* jnz 1b */
        0xba, 0x11, 0x05,                   /* mov dx, 0x511 */
        0xee,                               /* out dx, al        (timestamp) */
        0xb8, 0x00, 0xd0,                   /* mov ax, 0xd000 */
        0x8e, 0xd8,                         /* mov ds, ax */
        0x66, 0xb9, 0, 0, 0, 0,             /* mov ecx, N        (offset 29) */
        0xa2, 0x00, 0x00,                   /* 2: mov [0], al    (MMIO write 0xd0000) */
        0x66, 0x49,                         /* dec ecx */
        0x75, 0xf9,                         /* jnz 2b */
        0xba, 0x12, 0x05,                   /* mov dx, 0x512 */
        0xee,                               /* out dx, al        (stop) */
        0xfa, 0xf4, 0xeb, 0xfd,             /* cli; hlt; jmp hlt */
    };
    memcpy(&code[9], &n, 4);
    memcpy(&code[29], &n, 4);
    memcpy(p, code, sizeof code);
    return sizeof code;
}

static void one_rep(int kvm, uint32_t n, int rep) {
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0) die("KVM_SET_TSS_ADDR");
    uint64_t ident = 0xfffbc000UL;
    if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0) die("KVM_SET_IDENTITY_MAP_ADDR");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) die("KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {0};
    if (ioctl(vm, KVM_CREATE_PIT2, &pit) < 0) die("KVM_CREATE_PIT2");

    uint8_t *mem = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) die("mmap");
    program(mem + CODE, n);
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = RAM, .userspace_addr = (uint64_t) (uintptr_t) mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    int size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    struct kvm_run *run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    sregs.ds.base = 0;
    sregs.ds.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
    struct kvm_regs regs = {0};
    regs.rip = CODE;
    regs.rsp = 0x8000;
    regs.rflags = 2;
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");

    volatile uint64_t sink = 0;
    uint64_t t0 = now_ns(), t1 = 0, t2 = 0;
    uint64_t ports = 0, mmios = 0;
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
        if (run->exit_reason == KVM_EXIT_IO) {
            uint16_t port = run->io.port;
            uint8_t *data = (uint8_t *) run + run->io.data_offset;
            if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 1) {
                fprintf(stderr, "exit_bench: unexpected I/O at port 0x%x\n", port);
                exit(2);
            }
            if (port == 0x510) {
                sink += *data;
                ports++;
            } else if (port == 0x511) {
                t1 = now_ns();
            } else if (port == 0x512) {
                t2 = now_ns();
                break;
            }
        } else if (run->exit_reason == KVM_EXIT_MMIO) {
            if (run->mmio.is_write && run->mmio.phys_addr == 0xd0000 && run->mmio.len == 1) {
                sink += run->mmio.data[0];
                mmios++;
            }
        } else {
            fprintf(stderr, "exit_bench: unexpected exit reason %u\n", run->exit_reason);
            exit(2);
        }
    }
    if (ports != n || mmios != n) {
        fprintf(stderr, "exit_bench: saw %lu port and %lu MMIO exits, wanted %u each\n",
                (unsigned long) ports, (unsigned long) mmios, n);
        exit(2);
    }
    printf("BENCH exits-c rep=%d port_ns=%.1f mmio_ns=%.1f\n", rep, (double) (t1 - t0) / n, (double) (t2 - t1) / n);
    fflush(stdout);
    munmap(run, size);
    close(vcpu);
    munmap(mem, RAM);
    close(vm);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: exit_bench N REPS\n");
        return 2;
    }
    uint32_t n = (uint32_t) strtoul(argv[1], NULL, 10);
    int reps = atoi(argv[2]);
    if (n == 0 || reps <= 0) {
        fprintf(stderr, "exit_bench: N and REPS must be positive\n");
        return 2;
    }
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) die("/dev/kvm");
    for (int r = 0; r < reps; r++) one_rep(kvm, n, r);
    return 0;
}
