/* The KVM floor: what a syscall trap through a VM costs on this host, with nothing else in
 * the way.
 *
 *   kvm_floor getppid MS
 *
 * A one-vCPU VM in 64-bit mode. Guest ring 3 runs the timed loop `mov $110,%eax; syscall`.
 * The `syscall` lands in a ring-0 stub that stores the number in a mailbox page and
 * executes `in` on a port: a VM exit to this program, which answers with a constant through
 * the port's data; the stub then returns to ring 3 with `iretq`. This is the shape of a
 * sentry's KVM platform (application in guest ring 3, trap stub in ring 0, host loop) minus
 * all the work a real kernel does.
 *
 * Two ways into ring 0, as in pysentry's KVM platform (native/kvm_guest.c): with hardware
 * virtualization `syscall` enters ring 0 at LSTAR. On a kvm-pvm host (software
 * virtualization) a plain guest's `syscall` jumps to LSTAR without changing privilege; the
 * LSTAR page is supervisor-only, so that fetch raises #PF, delivered through the IDT to a
 * ring-0 handler that recognises it (cr2 == LSTAR) and serves it the same way.
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
#define PT         0x7000        /* 4 KiB pages for the first 2 MiB */
#define IDT        0x8000
#define KCODE      0x10000
#define UCODE      0x20000
#define KSTACK_TOP 0x80000
#define USTACK_TOP 0x90000
#define PORT       0x10
#define PORT_FAIL  0x11
#define LSTAR      (KCODE + 0x100)
#define PF_ENTRY   (KCODE + 0x200)
#define BAD_ENTRY  (KCODE + 0x300)
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
/* #PF handler (ring 0, kvm-pvm's shape of a syscall): frame = error, rip, cs, rflags, rsp,
 * ss; rcx/r11 hold the user rip/rflags the `syscall` saved. */
static const uint8_t kpf[] = {
    0x48, 0x89, 0x04, 0x25, 0x00, 0x60, 0x00, 0x00, /* mov %rax, MAILBOX             */
    0x0f, 0x20, 0xd2,                               /* mov %cr2, %rdx                */
    0x48, 0x81, 0xfa, 0x00, 0x01, 0x01, 0x00,       /* cmp $LSTAR, %rdx              */
    0x75, 0x11,                                     /* jne fail                      */
    0xe5, PORT,                                     /* in $PORT, %eax  -> VM exit    */
    0x48, 0x83, 0xc4, 0x08,                         /* add $8, %rsp  (error code)    */
    0x48, 0x89, 0x0c, 0x24,                         /* mov %rcx, (%rsp)   (rip)      */
    0x4c, 0x89, 0x5c, 0x24, 0x10,                   /* mov %r11, 16(%rsp) (rflags)   */
    0x48, 0xcf,                                     /* iretq                         */
    0xe6, PORT_FAIL,                                /* fail: out %al, $PORT_FAIL     */
    0xf4,                                           /* hlt                           */
};
/* Every other exception: report and stop. */
static const uint8_t kbad[] = {0xe6, PORT_FAIL, 0xf4};

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
    pd[0] = PT | 7;
    pd[1] = 0x200000 | 0x87;
    uint64_t *pt = (uint64_t *)(mem + PT);
    for (uint64_t i = 0; i < 512; i++)
        pt[i] = (i << 12) | (i == KCODE >> 12 ? 3 : 7);   /* the stub page: supervisor only */
    uint8_t *idt = mem + IDT;
    for (int v = 0; v < 256; v++) {
        uint64_t target = v == 14 ? PF_ENTRY : BAD_ENTRY;
        uint8_t *g = idt + 16 * v;
        memset(g, 0, 16);
        g[0] = target & 0xff; g[1] = (target >> 8) & 0xff;     /* offset 15:0 */
        g[2] = SEL_KCODE; g[3] = 0;                           /* selector */
        g[5] = 0x8E;                                          /* present, DPL 0, interrupt gate */
        g[6] = (target >> 16) & 0xff; g[7] = (target >> 24) & 0xff;
    }
    uint64_t rsp0 = KSTACK_TOP;
    memcpy(mem + TSS + 4, &rsp0, 8);                          /* ring-0 stack for exceptions */
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
    memcpy(mem + LSTAR, kentry, sizeof kentry);
    memcpy(mem + PF_ENTRY, kpf, sizeof kpf);
    memcpy(mem + BAD_ENTRY, kbad, sizeof kbad);
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
    sregs.idt.base = IDT;
    sregs.idt.limit = 256 * 16 - 1;
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
    msrs.e[1].data = LSTAR;
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
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == PORT_FAIL) {
            struct kvm_sregs sr;
            ioctl(vcpu_fd, KVM_GET_SREGS, &sr);
            uint64_t f[6];
            memcpy(f, mem + KSTACK_TOP - sizeof f, sizeof f);
            printf("ERROR guest took an unexpected exception: cr2 %#llx, stack %#llx %#llx "
                   "%#llx %#llx %#llx %#llx\n", (unsigned long long)sr.cr2,
                   (unsigned long long)f[0], (unsigned long long)f[1], (unsigned long long)f[2],
                   (unsigned long long)f[3], (unsigned long long)f[4], (unsigned long long)f[5]);
            exit(1);
        }
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == PORT &&
            run->io.direction == KVM_EXIT_IO_IN) {
            uint64_t nr;
            memcpy(&nr, mem + MAILBOX, 8);
            if (nr == 60) {
                /* Complete the pending `in` without running the guest, so the next run
                 * starts cleanly from the registers we set (KVM finishes a pending I/O
                 * exit at the next KVM_RUN, whatever the registers say meanwhile). */
                run->immediate_exit = 1;
                ioctl(vcpu_fd, KVM_RUN, 0);
                run->immediate_exit = 0;
                break;
            }
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
