/* The KVM floor: what a syscall trap through a VM costs on this host, with nothing else in
 * the way.
 *
 *   kvm_floor getppid MS
 *
 * A one-vCPU VM in 64-bit mode. Guest ring 3 runs the timed loop `mov $110,%eax; syscall`.
 * The `syscall` lands in a ring-0 stub (LSTAR) that stores the number in a mailbox page and
 * executes `in` on a port: a VM exit to this program, which answers with a constant through
 * the port's data; the stub then returns to ring 3 with `iretq`. This is the shape of a
 * sentry's KVM platform (application in guest ring 3, trap stub in ring 0, host loop) minus
 * all the work a real kernel does.
 *
 * The host times the run loop (guest time is not trusted to a clock the guest lacks). The
 * iteration count grows until MS milliseconds are spent. Prints the same RESULT line as
 * iobench, or "ERROR ..." when KVM is unusable.
 */
#define _GNU_SOURCE
#include <errno.h>
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

#define MEM_SIZE   0x400000ull   /* 4 MiB at guest physical 0, identity-mapped */
#define PML4       0x1000
#define PDPT       0x2000
#define PD         0x3000
#define GDT        0x4000
#define TSS        0x5000
#define MAILBOX    0x6000        /* +0 syscall nr, +8 iteration count, +16 saved user rsp */
#define KCODE      0x10000
#define UCODE      0x20000
#define KSTACK_TOP 0x80000
#define USTACK_TOP 0x90000
#define PORT       0x10
#define SEL_KCODE  0x08
#define SEL_KDATA  0x10
#define SEL_UDATA  0x1b          /* 0x18 | RPL 3 */
#define SEL_UCODE  0x23          /* 0x20 | RPL 3 */
#define SEL_TSS    0x28
#define ANSWER     4242

/* Ring 0: boot (iretq into ring 3) at KCODE, the syscall entry at KCODE + 0x100. */
static const uint8_t kboot[] = {
    0x6a, SEL_UDATA,                          /* push $SEL_UDATA          (ss)     */
    0x68, 0x00, 0x00, 0x09, 0x00,             /* push $USTACK_TOP         (rsp)    */
    0x6a, 0x02,                               /* push $2                  (rflags) */
    0x6a, SEL_UCODE,                          /* push $SEL_UCODE          (cs)     */
    0x68, 0x00, 0x00, 0x02, 0x00,             /* push $UCODE              (rip)    */
    0x48, 0xcf,                               /* iretq                             */
};
static const uint8_t kentry[] = {
    0x48, 0x89, 0x24, 0x25, 0x10, 0x60, 0x00, 0x00, /* mov %rsp, MAILBOX+16          */
    0x48, 0xc7, 0xc4, 0x00, 0x00, 0x08, 0x00,       /* mov $KSTACK_TOP, %rsp         */
    0x48, 0x89, 0x04, 0x25, 0x00, 0x60, 0x00, 0x00, /* mov %rax, MAILBOX             */
    0xe5, PORT,                                     /* in $PORT, %eax  -> VM exit    */
    0x6a, SEL_UDATA,                                /* push $SEL_UDATA               */
    0xff, 0x34, 0x25, 0x10, 0x60, 0x00, 0x00,       /* push MAILBOX+16  (user rsp)   */
    0x41, 0x53,                                     /* push %r11        (rflags)     */
    0x6a, SEL_UCODE,                                /* push $SEL_UCODE               */
    0x51,                                           /* push %rcx        (rip)        */
    0x48, 0xcf,                                     /* iretq                         */
};
/* Ring 3: r12 = count; loop getppid; then syscall 60 (exit) ends the run. */
static const uint8_t ucode[] = {
    0x4c, 0x8b, 0x24, 0x25, 0x08, 0x60, 0x00, 0x00, /* mov MAILBOX+8, %r12           */
    0xb8, 0x6e, 0x00, 0x00, 0x00,                   /* 1: mov $110, %eax             */
    0x0f, 0x05,                                     /* syscall                       */
    0x49, 0xff, 0xcc,                               /* dec %r12                      */
    0x75, 0xf4,                                     /* jnz 1b                        */
    0xb8, 0x3c, 0x00, 0x00, 0x00,                   /* mov $60, %eax                 */
    0x0f, 0x05,                                     /* syscall                       */
    0xeb, 0xfe,                                     /* jmp .  (never reached)        */
};

static int kvm_fd = -1, vm_fd = -1, vcpu_fd = -1;
static struct kvm_run *run;
static uint8_t *mem;
static int run_size;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fatal(const char *what) {
    printf("ERROR %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t seg_desc(int code, int dpl) {
    /* Flat 64-bit code (L=1) or data descriptor, present, S=1. */
    uint64_t d = (1ull << 47) | (1ull << 44) | ((uint64_t)dpl << 45);
    d |= code ? (0xAull << 40) | (1ull << 53) : (0x2ull << 40) | (1ull << 54) | (1ull << 55) | (0xFull << 48) | 0xFFFF;
    return d;
}

static void setup_memory(void) {
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fatal("mmap guest memory");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE, .userspace_addr = (uint64_t)mem};
    if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) fatal("KVM_SET_USER_MEMORY_REGION");
    uint64_t *pml4 = (uint64_t *)(mem + PML4), *pdpt = (uint64_t *)(mem + PDPT), *pd = (uint64_t *)(mem + PD);
    /* present | writable | user, and 2 MiB pages (PS) in the PD: ring 3 may touch it all. */
    pml4[0] = PDPT | 7;
    pdpt[0] = PD | 7;
    pd[0] = 0x000000 | 0x87;
    pd[1] = 0x200000 | 0x87;
    uint64_t *gdt = (uint64_t *)(mem + GDT);
    gdt[0] = 0;
    gdt[1] = seg_desc(1, 0);
    gdt[2] = seg_desc(0, 0);
    gdt[3] = seg_desc(0, 3);
    gdt[4] = seg_desc(1, 3);
    /* 64-bit TSS descriptor (16 bytes): base TSS, limit 103, type 0xB (busy), present. */
    gdt[5] = 103 | ((uint64_t)(TSS & 0xFFFFFF) << 16) | (0xBull << 40) | (1ull << 47);
    gdt[6] = 0;
    memcpy(mem + KCODE, kboot, sizeof kboot);
    memcpy(mem + KCODE + 0x100, kentry, sizeof kentry);
    memcpy(mem + UCODE, ucode, sizeof ucode);
}

static void setup_cpuid(void) {
    /* Long mode and SYSCALL must be visible in the guest's CPUID for EFER to accept them. */
    struct { struct kvm_cpuid2 hdr; struct kvm_cpuid_entry2 e[256]; } cpuid;
    memset(&cpuid, 0, sizeof cpuid);
    cpuid.hdr.nent = 256;
    if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &cpuid) < 0) fatal("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu_fd, KVM_SET_CPUID2, &cpuid) < 0) fatal("KVM_SET_CPUID2");
}

static void setup_vcpu(void) {
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) fatal("KVM_GET_SREGS");
    struct kvm_segment code = {.base = 0, .limit = 0xffffffff, .selector = SEL_KCODE,
                               .type = 11, .present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1};
    struct kvm_segment data = {.base = 0, .limit = 0xffffffff, .selector = SEL_KDATA,
                               .type = 3, .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1};
    struct kvm_segment tr = {.base = TSS, .limit = 103, .selector = SEL_TSS,
                             .type = 11, .present = 1, .s = 0};
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr = tr;
    sregs.gdt.base = GDT;
    sregs.gdt.limit = 7 * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;      /* any exception: triple fault, reported as a failure */
    sregs.cr3 = PML4;
    sregs.cr4 = 0x20 | 0x200 | 0x400;                  /* PAE, OSFXSR, OSXMMEXCPT */
    sregs.cr0 = 0x80000000 | 0x10000 | 0x20 | 0x10 | 0x2 | 0x1;   /* PG WP NE ET MP PE */
    sregs.efer = 0x500 | 0x1;                          /* LMA, LME, SCE */
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) fatal("KVM_SET_SREGS");

    struct { struct kvm_msrs hdr; struct kvm_msr_entry e[3]; } msrs;
    memset(&msrs, 0, sizeof msrs);
    msrs.hdr.nmsrs = 3;
    msrs.e[0].index = 0xC0000081;                      /* STAR: kernel CS/SS from 0x08 */
    msrs.e[0].data = ((uint64_t)0x10 << 48) | ((uint64_t)SEL_KCODE << 32);
    msrs.e[1].index = 0xC0000082;                      /* LSTAR: the ring-0 entry */
    msrs.e[1].data = KCODE + 0x100;
    msrs.e[2].index = 0xC0000084;                      /* SFMASK: clear TF, IF, DF */
    msrs.e[2].data = 0x700;
    if (ioctl(vcpu_fd, KVM_SET_MSRS, &msrs) != 3) fatal("KVM_SET_MSRS");

    struct kvm_regs regs;
    memset(&regs, 0, sizeof regs);
    regs.rip = KCODE;
    regs.rsp = KSTACK_TOP;
    regs.rflags = 2;
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) fatal("KVM_SET_REGS");
}

/* Run `count` guest getppid calls; returns elapsed ns or -1 after printing an error. */
static int64_t run_guest(uint64_t count) {
    setup_vcpu();
    memcpy(mem + MAILBOX + 8, &count, 8);
    uint64_t served = 0;
    int64_t t0 = now_ns();
    for (;;) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR) continue;
            fatal("KVM_RUN");
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == PORT &&
            run->io.direction == KVM_EXIT_IO_IN) {
            uint64_t nr;
            memcpy(&nr, mem + MAILBOX, 8);
            if (nr == 60) break;
            uint32_t answer = nr == 110 ? ANSWER : (uint32_t)-38;
            memcpy((uint8_t *)run + run->io.data_offset, &answer, 4);
            served++;
            continue;
        }
        struct kvm_regs r;
        ioctl(vcpu_fd, KVM_GET_REGS, &r);
        /* kvm-pvm (Pagetable-based VM) serves /dev/kvm on some clouds: it runs only
         * PVM-aware guests, and a plain ring-3 syscall never reaches ring 0 there. */
        int pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
        printf("ERROR guest stopped unexpectedly: exit reason %u%s at rip %#llx%s\n",
               run->exit_reason, run->exit_reason == KVM_EXIT_SHUTDOWN ? " (triple fault)" : "",
               (unsigned long long)r.rip,
               pvm ? "; host /dev/kvm is kvm-pvm, which runs only PVM-aware guests" : "");
        exit(1);
    }
    int64_t ns = now_ns() - t0;
    if (served != count) {
        printf("ERROR verify: %llu traps for %llu calls\n", (unsigned long long)served,
               (unsigned long long)count);
        exit(1);
    }
    return ns;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc != 3 || strcmp(argv[1], "getppid") != 0) {
        printf("ERROR usage: kvm_floor getppid MS\n");
        return 1;
    }
    int64_t limit = atoll(argv[2]) * 1000000ll;
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd < 0) fatal("open /dev/kvm");
    if (ioctl(kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) fatal("KVM API version");
    vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    if (vm_fd < 0) fatal("KVM_CREATE_VM");
    run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) fatal("KVM_GET_VCPU_MMAP_SIZE");
    setup_memory();
    vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
    if (vcpu_fd < 0) fatal("KVM_CREATE_VCPU");
    run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (run == MAP_FAILED) fatal("mmap kvm_run");
    setup_cpuid();
    /* Grow the count until one run spends the budget; report that run. Every run starts
     * from the same reset registers; the boot path is amortised over the count. */
    uint64_t count = 64;
    for (;;) {
        int64_t ns = run_guest(count);
        if (ns >= limit || count >= (1ull << 32)) {
            printf("RESULT mode=getppid ops=%llu ns=%lld bytes=0 fs=-\n",
                   (unsigned long long)count, (long long)ns);
            return 0;
        }
        uint64_t want = ns > 0 ? (uint64_t)((double)count * limit / ns * 1.1) : count * 8;
        count = want > count * 8 ? count * 8 : (want > count ? want : count * 2);
    }
}
