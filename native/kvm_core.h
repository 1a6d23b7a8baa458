/* pysentry KVM platform: the VM, its vCPU threads and the guest page tables.
 *
 * Guest physical layout (GPA):
 *   [0, 1 TiB)             the memory file, GPA == file offset; KVM slots of 1 GiB made on
 *                          first use (a slot of the whole file would make KVM allocate its
 *                          per-page metadata for the whole terabyte);
 *   PK_SYS_GPA             the system area: ring-0 stub code, IDT, kernel-half page tables,
 *                          the maintenance batch, and per-vCPU GDT/TSS/stack pages;
 *   PK_PT_GPA              the pool of user page-table pages.
 * Guest virtual layout: the application owns [0, PK_USER_TOP); the last PML4 slot
 * (PK_KBASE..) maps the system area and a window onto the page-table pool, supervisor-only,
 * identically in every address space.
 */
#include <stdint.h>
#include <sys/user.h>

#define PK_SYS_GPA   0x20000000000ULL
#define PK_SYS_SIZE  0x4000000ULL          /* 64 MiB */
#define PK_PT_GPA    0x30000000000ULL
#define PK_PT_SIZE   0x40000000ULL         /* 1 GiB of page-table pages */
#define PK_KBASE     0xffffff8000000000ULL /* system area, virtual */
#define PK_KPT       (PK_KBASE + 0x40000000ULL)  /* page-table pool window, virtual */
#define PK_USER_TOP  0x7ffffffff000ULL
#define PK_MAX_VCPUS 512
/* Rewritten syscall sites (docs/kvm.md, "Rewritten syscall sites"): `mov $N,%eax; syscall`
 * becomes `mov PK_SYSCALL_WINDOW+4*N,%ecx` (8b 0c 25 disp32), a ring-3 load from a page with
 * no memory slot behind it, which exits to the host as MMIO without running the stub. The
 * disp32 is 0xffccxxxx, so its byte +5 (the old `syscall`) is an int3 (0xcc). */
#define PK_SYSCALL_WINDOW 0xffffffffffcc0000ULL
#define PK_SYSCALL_WINDOW_NR 0x4000        /* syscall numbers a site may encode */

/* Ports the stub exits through. */
#define PK_PORT_SYSCALL 0x10   /* ring 0 reached through LSTAR (hardware-virtualized hosts) */
#define PK_PORT_EXC     0x11   /* any exception; the frame is on the vCPU's ring-0 stack */
#define PK_PORT_DONE    0x12   /* end of a maintenance batch */

/* Event kinds reported to Python (match sentry/platform.py where they overlap). */
#define PK_EV_SYSCALL   1
#define PK_EV_FAULT     2
#define PK_EV_INTERRUPT 3
#define PK_EV_GONE      4
/* How a syscall reached the host (pk_event.detail). */
#define PK_VIA_SYSCALL  0      /* a `syscall` instruction */
#define PK_VIA_WINDOW   1      /* a rewritten site's load from PK_SYSCALL_WINDOW */
#define PK_VIA_PROBE    2      /* PK_EV_INTERRUPT after a syscall the vCPU thread answered
                                * (registers hold the answer): a site probe, see below */

struct pk_event {
    int kind;
    int vector;          /* PK_EV_FAULT: the x86 exception vector */
    uint64_t error;      /* its error code */
    uint64_t cr2;        /* #PF: faulting address */
    int exit_reason;     /* PK_EV_GONE: KVM exit reason, or -errno of KVM_RUN */
    uint64_t detail;     /* PK_EV_GONE: guest rip when known; PK_EV_SYSCALL, PK_EV_INTERRUPT:
                          * PK_VIA_* */
};

/* Values a vCPU thread may answer syscalls with (pk_vcpu_set_ids), by slot. */
#define PK_ID_PID   0
#define PK_ID_TID   1
#define PK_ID_PPID  2
#define PK_ID_UID   3
#define PK_ID_EUID  4
#define PK_ID_GID   5
#define PK_ID_EGID  6
#define PK_ID_PGRP  7      /* getpgrp, getpgid(0) */
#define PK_ID_SID   8      /* getsid(0) */
#define PK_ID_COUNT 9

struct pk_vm;
struct pk_as;
struct pk_vcpu;

/* The VM. memfd/memsize: the memory file. Returns NULL with *err = -errno / a PK_E code. */
struct pk_vm *pk_vm_create(int memfd, uint64_t memsize, int *err, char *msg, int msglen);
void pk_vm_destroy(struct pk_vm *vm);
/* pk_vm_destroy on a detached host thread of its own (here when none can be started): the
 * caller goes on at once. */
void pk_vm_destroy_aside(struct pk_vm *vm);
/* pk_vm_create on a host thread of its own, followed by the VM's one-time work (the first
 * runs of the maintenance vCPU and of one application vCPU, which is left in the pool):
 * started here (NULL: no thread, create it synchronously instead) ... */
struct pk_vm_creation;
struct pk_vm_creation *pk_vm_create_start(int memfd, uint64_t memsize);
/* ... and joined here, with pk_vm_create's result; frees the creation. */
struct pk_vm *pk_vm_create_finish(struct pk_vm_creation *c, int *err, char *msg, int msglen);
int pk_vm_event_fd(struct pk_vm *vm);
uint64_t pk_vm_xcr0(struct pk_vm *vm);
int pk_vm_xstate_size(struct pk_vm *vm);
/* Ids of vCPUs that stopped since the last call (at most max). */
int pk_vm_collect(struct pk_vm *vm, int *ids, int max);
/* Busy-wait up to usec for a stop (no eventfd write is needed for one seen here).
 * Returns 1 when pk_vm_collect has something. */
int pk_vm_spin(struct pk_vm *vm, int usec);
/* Make the event fd readable (the loop must re-check something). */
void pk_vm_wake(struct pk_vm *vm);
/* How long a stopped vCPU thread busy-waits for its next resume before it sleeps, and how
 * many waits a side (the loop, a vCPU thread) skips after one of its waits timed out. */
void pk_vm_set_spin(struct pk_vm *vm, int vcpu_usec, int backoff);
/* Syscall-site rewriting (platform/kvm/rewrite.py) learns of sites only from the stops the
 * kernel sees. So that sites of the syscalls answered on vCPU threads are learnt too, one in
 * every `every` of those that came by a `syscall` instruction stops after its answer
 * (PK_EV_INTERRUPT, detail PK_VIA_PROBE, orig_rax still the number). every: a power of
 * two, or 0 (never). */
void pk_vm_set_site_probe(struct pk_vm *vm, int every);
/* No more probes for the site whose `syscall` returns to rip on this vCPU (the kernel
 * decided about it); the last few such sites are kept, until the vCPU changes owner. */
void pk_vcpu_mute_site(struct pk_vcpu *v, uint64_t rip);
/* Statistics for tests and benchmarks: 0 maintenance runs, 1 guest page-table writes,
 * 2 tables replaced, 3 vCPUs, 4 syscalls answered on vCPU threads, 5 eventfd wakeups of the
 * loop, 6 vCPU-thread sleeps awaiting a resume, 7 stops caught by pk_vm_spin, 8 stops
 * reached by direct runs on the loop thread, 9 ns spent in direct runs, 10 ns of that in
 * KVM_RUN, 11 KVM_RUN calls of direct runs, 12 syscalls that came through rewritten sites,
 * 13 probes of the vCPU-thread path by adaptive direct runs (pk_vcpu_choose_direct),
 * 14 entries made again after a spurious fault at the stub's iretq. */
uint64_t pk_vm_stat(struct pk_vm *vm, int which);

/* Address spaces: page tables built from the sentry's mappings of the memory file. */
struct pk_as *pk_as_create(struct pk_vm *vm);
int pk_as_map(struct pk_as *as, uint64_t va, uint64_t len, uint64_t off, int prot);
int pk_as_unmap(struct pk_as *as, uint64_t va, uint64_t len);
int pk_as_protect(struct pk_as *as, uint64_t va, uint64_t len, int prot);
void pk_as_release(struct pk_as *as);
/* Test hook: the leaf entry for va (0 when absent). */
uint64_t pk_as_lookup(struct pk_as *as, uint64_t va);

/* vCPUs: a pool; each has its own host thread that runs KVM_RUN. */
struct pk_vcpu *pk_vcpu_get(struct pk_vm *vm, int *err);
void pk_vcpu_put(struct pk_vcpu *v);
int pk_vcpu_id(struct pk_vcpu *v);
struct pk_vcpu *pk_vcpu_by_id(struct pk_vm *vm, int id);
struct pk_event *pk_vcpu_event(struct pk_vcpu *v);
/* Run the application with regs in as until its next event (reported via pk_vm_collect).
 * Returns 1 when the vCPU thread was asleep and had to be woken, 0 when it was waiting awake. */
int pk_vcpu_resume(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as);
void pk_vcpu_kick(struct pk_vcpu *v);
/* Direct runs, on the calling (loop) thread instead of the vCPU's own: prepare the entry as
 * pk_vcpu_resume does, without waking the thread ... */
int pk_vcpu_prepare(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as);
/* ... then run it until its next stop (pushed on the ring for pk_vm_collect; returns 1) or
 * until slice_usec have passed, a host signal arrives or another vCPU reports a stop (the
 * guest is stopped with EV_INTERRUPT, also returns 1). Returns 0 without running when the
 * ring already holds a stop (collect first), <0 on misuse. */
int pk_vcpu_run_here(struct pk_vcpu *v, int slice_usec);
/* Whether the next run of this stopped vCPU, whose context runs alone, should be a direct
 * run rather than a hand-off to its thread: 1 when the thread sleeps (a hand-off would cost a
 * wakeup), except every so often when the kernel has been quick enough for the thread's
 * busy-wait (then 0, and the thread busy-waits again after that run). */
int pk_vcpu_choose_direct(struct pk_vcpu *v);
/* A prepared direct run that has not run yet goes to the vCPU's own thread instead (another
 * context is starting to run): 1, or 0 when it stays prepared (it was kicked). */
int pk_vcpu_hand_to_thread(struct pk_vcpu *v);
/* Forget a prepared direct run that never ran (the context is being released). */
void pk_vcpu_cancel_direct(struct pk_vcpu *v);
/* Let the vCPU thread answer the id syscalls itself with ids[PK_ID_COUNT] (serve != 0), or
 * send every syscall to the kernel (serve == 0). Safe while the vCPU runs. */
void pk_vcpu_set_ids(struct pk_vcpu *v, int serve, const int64_t *ids);
/* Syscalls this vCPU's thread answered without the kernel. */
uint64_t pk_vcpu_served(struct pk_vcpu *v);
/* CPU time the vCPU's thread spent running its guest and answering syscalls in C, ns. */
uint64_t pk_vcpu_cpu_ns(struct pk_vcpu *v);
int pk_vcpu_get_xsave(struct pk_vcpu *v, void *buf4096);
int pk_vcpu_set_xsave(struct pk_vcpu *v, const void *buf4096);
