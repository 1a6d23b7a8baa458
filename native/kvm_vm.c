/* The VM and its vCPUs: creation, the per-vCPU host threads that run KVM_RUN, exit
 * decoding, and the hand-off of stops to the sentry's event loop.
 *
 * Threads: the event loop (Python) is one thread and never blocks in KVM_RUN. Each
 * application vCPU has a host thread of its own; it sleeps on a futex until the loop resumes
 * it, runs the guest, decodes exits it can finish by itself (signals that interrupt KVM_RUN
 * without a stop request) and reports every other stop by pushing its id on a ring and
 * writing the VM's eventfd, which the loop polls. A vCPU's registers and state belong to
 * its thread while it runs and to the loop thread while it is stopped; `running` is the
 * hand-off. vCPU 0 is the maintenance vCPU, run synchronously on the loop thread.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "kvm_internal.h"

/* Flags ring 3 may hold: CF PF AF ZF SF TF DF OF RF AC ID (never IF/IOPL/NT: the stub sets IF). */
#define USER_FLAGS 0x250dd5ULL
/* Entries made again after a spurious fault at the stub's iretq (decode). */
#define ENTRY_RETRIES 3

static int kick_signal;
static __thread struct kvm_run *tls_run;

static void on_kick(int sig) {
    (void)sig;
    struct kvm_run *r = tls_run;
    if (r) r->immediate_exit = 1;      /* a KVM_RUN about to start returns at once */
}

static long futex(_Atomic uint32_t *w, int op, uint32_t val) {
    return syscall(SYS_futex, w, op, val, NULL, NULL, 0);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* Busy-wait until *word is nonzero or usec have passed; returns whether it became nonzero.
 * The clock is read every 64 rounds only (a vDSO call, but not free).
 * Spinning pays only when the other side answers within the budget; on a loaded host (2
 * cores shared with other work) a spinner takes the CPU the answer needs. So a wait that
 * times out makes its side skip its next vm->spin_backoff waits and sleep at once. */
static int spin_until(_Atomic int *iword, _Atomic uint32_t *uword, int usec) {
    if (usec <= 0) return 0;
    uint64_t deadline = now_ns() + (uint64_t)usec * 1000;
    for (unsigned n = 1;; n++) {
        if (iword ? atomic_load_explicit(iword, memory_order_acquire) != 0
                  : atomic_load_explicit(uword, memory_order_acquire) != 0)
            return 1;
        __asm__ volatile("" ::: "memory");   /* no pause: see docs/kvm.md */
        if ((n & 63) == 0 && now_ns() >= deadline) return 0;
    }
}

static void set_msg(char *msg, int len, const char *what, int err) {
    if (msg && len > 0) snprintf(msg, (size_t)len, "%s: %s", what, strerror(err));
}

static uint64_t host_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static int setup_cpuid(struct pk_vm *vm) {
    int n = 256;
    struct kvm_cpuid2 *c = calloc(1, sizeof *c + (size_t)n * sizeof(struct kvm_cpuid_entry2));
    if (!c) return -ENOMEM;
    c->nent = (uint32_t)n;
    if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) { free(c); return -errno; }
    /* XSAVE features: the host's, as far as KVM supports them. */
    uint64_t supported = 0;
    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 0xd && e->index == 0) supported = ((uint64_t)e->edx << 32) | e->eax;
        /* The stub does not enable FSGSBASE, so the application must not see it. */
        if (e->function == 7 && e->index == 0) e->ebx &= ~1u;
    }
    vm->xcr0 = host_xcr0() & supported & 0x2ff;    /* x87 SSE AVX MPX AVX-512 PKRU */
    unsigned a, b, cc, d;
    __cpuid_count(0xd, 0, a, b, cc, d);
    vm->xstate_size = (int)b;    /* the host runs with this same XCR0 */
    if (vm->xstate_size < 576 || vm->xstate_size > 4096) vm->xstate_size = 4096;
    vm->cpuid = c;
    return 0;
}

static int vcpu_setup(struct pk_vm *vm, struct pk_vcpu *v) {
    if (ioctl(v->fd, KVM_SET_CPUID2, vm->cpuid) < 0) return -errno;
    pk_guest_build_vcpu(vm, v);
    pk_guest_sregs0(vm, v, &v->sregs0);
    if (ioctl(v->fd, KVM_SET_SREGS, &v->sregs0) < 0) return -errno;
    struct kvm_xcrs x;
    memset(&x, 0, sizeof x);
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = vm->xcr0;
    if (ioctl(v->fd, KVM_SET_XCRS, &x) < 0) return -errno;
    struct { struct kvm_msrs h; struct kvm_msr_entry e[4]; } m;
    memset(&m, 0, sizeof m);
    m.h.nmsrs = 4;
    m.e[0].index = 0xC0000081;      /* STAR: syscall CS/SS 0x10/0x18, user CS/SS 0x33/0x2b */
    m.e[0].data = ((uint64_t)0x20 << 48) | ((uint64_t)SEL_KCODE << 32);
    m.e[1].index = 0xC0000082;      /* LSTAR */
    m.e[1].data = pk_stub_addr(0);
    m.e[2].index = 0xC0000083;      /* CSTAR: no compat-mode syscalls */
    m.e[2].data = pk_stub_addr(0);
    m.e[3].index = 0xC0000084;      /* FMASK: TF DF IF IOPL AC NT */
    m.e[3].data = 0x47700;
    if (ioctl(v->fd, KVM_SET_MSRS, &m) != 4) return -EINVAL;
    v->loaded_as_id = 0;
    v->need_sregs = 1;
    return 0;
}

static struct pk_vcpu *vcpu_create(struct pk_vm *vm, int *err) {
    if (vm->nvcpus >= PK_MAX_VCPUS) { *err = -EAGAIN; return NULL; }
    struct pk_vcpu *v = calloc(1, sizeof *v);
    if (!v) { *err = -ENOMEM; return NULL; }
    v->vm = vm;
    v->id = vm->nvcpus;
    v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, v->id);
    if (v->fd < 0) { *err = -errno; free(v); return NULL; }
    v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) { *err = -errno; close(v->fd); free(v); return NULL; }
    int r = vcpu_setup(vm, v);
    if (r) { *err = r; munmap(v->run, (size_t)vm->run_size); close(v->fd); free(v); return NULL; }
    vm->vcpus[vm->nvcpus++] = v;
    return v;
}

struct pk_vm *pk_vm_create(int memfd, uint64_t memsize, int *err, char *msg, int msglen) {
    struct pk_vm *vm = calloc(1, sizeof *vm);
    if (!vm) { *err = -ENOMEM; return NULL; }
    vm->kvm_fd = vm->vm_fd = vm->event_fd = -1;
    pthread_mutex_init(&vm->lock, NULL);
    vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (vm->kvm_fd < 0) { *err = -errno; set_msg(msg, msglen, "/dev/kvm", errno); goto fail; }
    if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        *err = -EINVAL; set_msg(msg, msglen, "KVM API version", EINVAL); goto fail;
    }
    if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0 ||
        ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) <= 0 ||
        !(ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS)) {
        *err = -ENOTSUP; set_msg(msg, msglen, "KVM lacks immediate_exit/XCRS/sync_regs", ENOTSUP);
        goto fail;
    }
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
    if (vm->vm_fd < 0) { *err = -errno; set_msg(msg, msglen, "KVM_CREATE_VM", errno); goto fail; }
    vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    vm->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    vm->vcpu_spin_usec = 0;
    vm->spin_backoff = 32;
    vm->memsize = memsize;
    vm->mem = mmap(NULL, memsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, memfd, 0);
    vm->sys = mmap(NULL, PK_SYS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    vm->pt = mmap(NULL, PK_PT_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    vm->mem_piece = pk_mem_piece_size(memsize,
                                      ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS));
    vm->slot_made = calloc((size_t)((memsize + vm->mem_piece - 1) / vm->mem_piece), 1);
    if (vm->event_fd < 0 || vm->mem == MAP_FAILED || vm->sys == MAP_FAILED || vm->pt == MAP_FAILED
        || !vm->slot_made) {
        *err = -ENOMEM; set_msg(msg, msglen, "VM memory", ENOMEM); goto fail;
    }
    /* The page-table pool and the memory file get their slots piece by piece as they are
     * used (kvm_mmu.c): a slot's cost grows with its size (kvm_internal.h). */
    struct kvm_userspace_memory_region s0 = {.slot = SLOT_SYS, .guest_phys_addr = PK_SYS_GPA,
        .memory_size = PK_SYS_SIZE, .userspace_addr = (uint64_t)vm->sys};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &s0) < 0) {
        *err = -errno; set_msg(msg, msglen, "KVM_SET_USER_MEMORY_REGION", errno); goto fail;
    }
    int r = setup_cpuid(vm);
    if (r) { *err = r; set_msg(msg, msglen, "KVM_GET_SUPPORTED_CPUID", -r); goto fail; }
    pk_guest_build_system(vm);
    pk_mmu_init(vm);
    if (!kick_signal) {
        kick_signal = SIGRTMIN + 7;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_kick;
        sigemptyset(&sa.sa_mask);
        sigaction(kick_signal, &sa, NULL);
    }
    if (!vcpu_create(vm, err)) { set_msg(msg, msglen, "KVM_CREATE_VCPU", -*err); goto fail; }
    return vm;
fail:
    pk_vm_destroy(vm);
    return NULL;
}

static void *vcpu_main(void *arg);

/* The calling thread's CPU time, ns. */
static uint64_t thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t pk_vcpu_cpu_ns(struct pk_vcpu *v) { return atomic_load(&v->cpu_ns); }

void pk_vm_destroy(struct pk_vm *vm) {
    if (!vm) return;
    for (int i = 0; i < vm->nvcpus; i++) {
        struct pk_vcpu *v = vm->vcpus[i];
        if (v->has_thread) {
            /* A thread still in KVM_RUN stops at the kick (flag first, so the EINTR is not
             * taken for a stray signal), reports, and then sees the quit request. */
            atomic_store(&v->kick, 1);
            atomic_store(&v->go, 2);
            futex(&v->go, FUTEX_WAKE, 1);
            pthread_kill(v->thread, kick_signal);
            pthread_join(v->thread, NULL);
        }
        munmap(v->run, (size_t)vm->run_size);
        close(v->fd);
        free(v);
    }
    if (vm->loop_tid) timer_delete(vm->slice_timer);
    if (vm->vm_fd >= 0) close(vm->vm_fd);
    if (vm->kvm_fd >= 0) close(vm->kvm_fd);
    if (vm->event_fd >= 0) close(vm->event_fd);
    if (vm->mem && vm->mem != MAP_FAILED) munmap(vm->mem, vm->memsize);
    if (vm->sys && vm->sys != MAP_FAILED) munmap(vm->sys, PK_SYS_SIZE);
    if (vm->pt && vm->pt != MAP_FAILED) munmap(vm->pt, PK_PT_SIZE);
    free(vm->slot_made);
    free(vm->cpuid);
    free(vm->clean);
    free(vm->dirty);
    free(vm);
}

static void *destroy_main(void *vm) {
    pk_vm_destroy(vm);
    return NULL;
}

void pk_vm_destroy_aside(struct pk_vm *vm) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);     /* host signals stay the sentry's */
    pthread_t t;
    int r = pthread_create(&t, &a, destroy_main, vm);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (r) pk_vm_destroy(vm);
}

int pk_vm_event_fd(struct pk_vm *vm) { return vm->event_fd; }
uint64_t pk_vm_xcr0(struct pk_vm *vm) { return vm->xcr0; }
int pk_vm_xstate_size(struct pk_vm *vm) { return vm->xstate_size; }
uint64_t pk_vm_stat(struct pk_vm *vm, int which) {
    return which == 0 ? vm->stat_runs : which == 1 ? vm->stat_writes
         : which == 2 ? vm->stat_replaced : which == 4 ? atomic_load(&vm->stat_served)
         : which == 5 ? atomic_load(&vm->stat_wakes) : which == 6 ? atomic_load(&vm->stat_sleeps)
         : which == 7 ? atomic_load(&vm->stat_spin_hits)
         : which == 8 ? vm->stat_direct
         : which == 9 ? vm->stat_direct_ns : which == 10 ? vm->stat_direct_run_ns : which == 11 ? vm->stat_direct_ioctls
         : which == 12 ? atomic_load(&vm->stat_window)
         : which == 13 ? vm->stat_thread_probes
         : which == 14 ? atomic_load(&vm->stat_entry_retries)
         : which == 20 ? vm->stat_kept : which == 21 ? vm->stat_relinked    /* kvm_mmu.c */
         : (uint64_t)vm->nvcpus;
}

void pk_vm_set_spin(struct pk_vm *vm, int vcpu_usec, int backoff) {
    vm->vcpu_spin_usec = vcpu_usec;
    vm->spin_backoff = backoff;
}

void pk_vm_set_site_probe(struct pk_vm *vm, int every) {
    vm->site_probe_mask = every > 0 && (every & (every - 1)) == 0 ? (uint32_t)every - 1 : 0;
}

void pk_vcpu_mute_site(struct pk_vcpu *v, uint64_t rip) {
    v->muted[v->nmuted] = rip;
    v->nmuted = (v->nmuted + 1) % 4;
}

/* Writers write first and set efd_written after, so a collect that finds the flag clear
 * while a write is in flight leaves the fd readable: the loop wakes once more and the next
 * collect drains it. A drain never loses a stop: stops are in the ring, not the counter. */
void pk_vm_wake(struct pk_vm *vm) {
    uint64_t one = 1;
    ssize_t w = write(vm->event_fd, &one, 8);
    (void)w;
    atomic_store(&vm->efd_written, 1);
    atomic_fetch_add_explicit(&vm->stat_wakes, 1, memory_order_relaxed);
}

int pk_vm_collect(struct pk_vm *vm, int *ids, int max) {
    if (atomic_exchange(&vm->efd_written, 0)) {
        uint64_t count;
        ssize_t r = read(vm->event_fd, &count, 8);
        (void)r;
    }
    int n = 0;
    pthread_mutex_lock(&vm->lock);
    while (n < max && vm->ring_head != vm->ring_tail) {
        ids[n++] = vm->ring[vm->ring_head];
        vm->ring_head = (vm->ring_head + 1) % (PK_MAX_VCPUS + 1);
    }
    atomic_fetch_sub(&vm->ring_count, n);
    pthread_mutex_unlock(&vm->lock);
    return n;
}

/* The loop busy-waits for a stop instead of sleeping in epoll and being woken through the
 * eventfd (two host wakeups per round trip, each a cross-CPU IPI in this VM).
 * Invariant with report(): a stop pushed while loop_spinning is 1 skips the eventfd write,
 * so after clearing the flag the ring is checked again (both sides are seq_cst: either
 * report() sees the flag clear and writes, or this check sees the stop). */
int pk_vm_spin(struct pk_vm *vm, int usec) {
    if (atomic_load(&vm->ring_count)) return 1;
    if (vm->spin_skip > 0) {
        vm->spin_skip--;
        return 0;
    }
    atomic_store(&vm->loop_spinning, 1);
    int got = spin_until(&vm->ring_count, NULL, usec);
    atomic_store(&vm->loop_spinning, 0);
    if (got) atomic_fetch_add_explicit(&vm->stat_spin_hits, 1, memory_order_relaxed);
    else vm->spin_skip = vm->spin_backoff;
    return got || atomic_load(&vm->ring_count) != 0;
}

/* Put a stopped vCPU's id on the completion ring. */
static void push_stop(struct pk_vcpu *v) {
    struct pk_vm *vm = v->vm;
    atomic_store(&v->kick, 0);
    v->stop_ns = now_ns();
    pthread_mutex_lock(&vm->lock);
    vm->ring[vm->ring_tail] = v->id;
    vm->ring_tail = (vm->ring_tail + 1) % (PK_MAX_VCPUS + 1);
    atomic_store(&v->running, 0);
    atomic_fetch_add(&vm->ring_count, 1);
    pthread_mutex_unlock(&vm->lock);
}

static void report(struct pk_vcpu *v) {
    struct pk_vm *vm = v->vm;
    push_stop(v);
    /* A loop thread inside a direct run sees nothing but a signal: stop it (its guest is
     * stopped with EV_INTERRUPT, see pk_vcpu_run_here). Paired with its ring check after
     * it sets loop_in_guest: either it sees this stop or this sees the flag. */
    if (atomic_load(&vm->loop_in_guest)) pthread_kill(vm->loop_thread, kick_signal);
    if (!atomic_load(&vm->loop_spinning)) pk_vm_wake(vm);
}

/* ---- syscalls answered by the vCPU thread ------------------------------------------ */

/* The id syscalls: their answer is a value of the task that only the kernel changes, and
 * the kernel pushes it here whenever it may have changed (platform/kvm/kvm.py). Slot, or -1.
 * getpgid/getsid only about the caller itself (pid 0: Linux reads the argument as an int). */
static int served_slot(uint64_t nr, uint64_t arg0) {
    switch (nr) {
    case 111: return PK_ID_PGRP;    /* getpgrp */
    case 121: return (uint32_t)arg0 == 0 ? PK_ID_PGRP : -1;    /* getpgid(0) */
    case 124: return (uint32_t)arg0 == 0 ? PK_ID_SID : -1;     /* getsid(0) */
    case 39:  return PK_ID_PID;     /* getpid */
    case 186: return PK_ID_TID;     /* gettid */
    case 110: return PK_ID_PPID;    /* getppid */
    case 102: return PK_ID_UID;     /* getuid */
    case 107: return PK_ID_EUID;    /* geteuid */
    case 104: return PK_ID_GID;     /* getgid */
    case 108: return PK_ID_EGID;    /* getegid */
    default:  return -1;
    }
}

void pk_vcpu_set_ids(struct pk_vcpu *v, int serve, const int64_t *ids) {
    if (!serve) {
        atomic_store(&v->serve, 0);
        return;
    }
    for (int i = 0; i < PK_ID_COUNT; i++) atomic_store(&v->ids[i], ids[i]);
    atomic_store(&v->serve, 1);
}

uint64_t pk_vcpu_served(struct pk_vcpu *v) { return v->served; }

/* ---- register conversion ----------------------------------------------------------- */

static void gprs_to_user(const struct kvm_regs *k, struct user_regs_struct *u) {
    u->r15 = k->r15; u->r14 = k->r14; u->r13 = k->r13; u->r12 = k->r12;
    u->rbp = k->rbp; u->rbx = k->rbx; u->r11 = k->r11; u->r10 = k->r10;
    u->r9 = k->r9; u->r8 = k->r8; u->rax = k->rax; u->rcx = k->rcx;
    u->rdx = k->rdx; u->rsi = k->rsi; u->rdi = k->rdi;
    u->cs = SEL_UCODE; u->ss = SEL_UDATA;
}

/* Load the context's registers for an entry through the stub's iretq, or, when the vCPU
 * stopped in ring 3 at a rewritten syscall site and cr3/fs/gs stay as loaded, straight
 * into ring 3 (no ring-0 code runs: that is what makes the window path cheap on PVM). */
static void prepare_entry(struct pk_vcpu *v) {
    struct user_regs_struct *u = v->regs;
    struct kvm_regs *k = &v->run->s.regs.regs;
    k->r15 = u->r15; k->r14 = u->r14; k->r13 = u->r13; k->r12 = u->r12;
    k->rbp = u->rbp; k->rbx = u->rbx; k->r11 = u->r11; k->r10 = u->r10;
    k->r9 = u->r9; k->r8 = u->r8; k->rax = u->rax; k->rcx = u->rcx;
    k->rdx = u->rdx; k->rsi = u->rsi; k->rdi = u->rdi;
    if (v->in_user == 2 && !v->need_sregs && v->loaded_as_id == v->as->id &&
        v->fs_base == u->fs_base && v->gs_base == u->gs_base) {
        k->rip = u->rip;
        k->rsp = u->rsp;
        k->rflags = (u->eflags & USER_FLAGS) | 0x202;   /* as the stub's iretq would load */
        v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
        v->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
        return;
    }
    uint64_t top = PK_KBASE + SYS_VCPUS + (uint64_t)v->id * VCPU_AREA + VCPU_AREA;
    uint64_t *frame = (uint64_t *)(v->area + VCPU_AREA - 40);
    frame[0] = u->rip;
    frame[1] = SEL_UCODE;
    frame[2] = (u->eflags & USER_FLAGS) | 0x202;        /* IF on, IOPL 0 */
    frame[3] = u->rsp;
    frame[4] = SEL_UDATA;
    k->rsp = top - 40;
    k->rip = pk_stub_addr(1);
    k->rflags = 2;
    v->run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    v->run->kvm_dirty_regs = KVM_SYNC_X86_REGS;
    if (v->need_sregs || v->in_user || v->loaded_as_id != v->as->id ||
        v->fs_base != u->fs_base || v->gs_base != u->gs_base) {
        struct kvm_sregs *s = &v->run->s.regs.sregs;
        *s = v->sregs0;
        s->cr3 = v->as->pml4;
        s->fs.base = u->fs_base;
        s->gs.base = u->gs_base;
        v->run->kvm_dirty_regs |= KVM_SYNC_X86_SREGS;
        v->run->kvm_valid_regs |= KVM_SYNC_X86_SREGS;
        v->loaded_as_id = v->as->id;
        v->fs_base = u->fs_base;
        v->gs_base = u->gs_base;
        v->in_user = 0;
        v->need_sregs = 0;
    }
}

/* A syscall stop (regs already in v->regs) the thread may answer itself: then the answer
 * is in rax, the entry is prepared, and it returns 1. Not when the kernel asked for a stop
 * (a pending signal must be delivered at this syscall's exit), nor under single-step. A kick
 * that lands after the check sets immediate_exit, so the next KVM_RUN reports EV_INTERRUPT
 * at the stub's iretq with these (answered) registers. */
static int serve_here(struct pk_vcpu *v) {
    struct user_regs_struct *u = v->regs;
    if (!atomic_load_explicit(&v->serve, memory_order_acquire)) return 0;
    int slot = served_slot(u->orig_rax, u->rdi);
    if (slot < 0 || (u->eflags & 0x100) || atomic_load(&v->kick)) return 0;
    u->rax = (uint64_t)atomic_load_explicit(&v->ids[slot], memory_order_relaxed);
    prepare_entry(v);
    v->served++;
    atomic_fetch_add_explicit(&v->vm->stat_served, 1, memory_order_relaxed);
    return 1;
}

/* ---- rewritten syscall sites ------------------------------------------------------
 * The platform rewrites `mov $N,%eax; syscall` into `mov PK_SYSCALL_WINDOW+4*N,%ecx`
 * (platform/kvm/kvm.py, docs/kvm.md "Rewritten syscall sites"). The load exits as MMIO
 * straight from ring 3; KVM has decoded it and holds the read open until the next
 * KVM_RUN. */

/* Arbitrary, with the high bit set, so that a load that received it is recognisable. */
#define WINDOW_SENTINEL 0xa5c3f0e1u

/* Finish the pending emulated access now: left open, KVM would complete it at the next
 * entry and overwrite the registers the kernel gave that entry with the emulator's (its
 * destination register and rip). An entry with immediate_exit completes it and returns
 * EINTR before running the guest; the sync-regs area then holds the completed state. An
 * access wider than 8 bytes (SSE, rep movs) comes in 8-byte pieces, each one more MMIO
 * exit of the window on the completion entry: reads get zeros, until the last. Returns
 * how many pieces followed the first (0 for a single access), or -EIO. */
static int complete_mmio(struct pk_vcpu *v) {
    struct kvm_run *run = v->run;
    for (int more = 0; more <= 4096; more++) {
        run->kvm_dirty_regs = 0;
        run->kvm_valid_regs = KVM_SYNC_X86_REGS;
        run->immediate_exit = 1;
        int rc = ioctl(v->fd, KVM_RUN, 0);
        int err = rc < 0 ? errno : 0;
        run->immediate_exit = 0;
        if (rc < 0) return err == EINTR || err == EAGAIN ? more : -EIO;
        if (run->exit_reason != KVM_EXIT_MMIO ||
            run->mmio.phys_addr - PK_WINDOW_GPA >= PK_WINDOW_SIZE)
            return -EIO;
        if (!run->mmio.is_write) memset(run->mmio.data, 0, sizeof run->mmio.data);
    }
    return -EIO;
}

/* A single-stepping guest (TF) gets a #DB queued by the emulator for the completed load;
 * a real `syscall` has no such trap (Linux returns with TF restored, trapping after the
 * next instruction, which the entry with TF in rflags reproduces). Drop it. */
static void drop_queued_debug_trap(struct pk_vcpu *v) {
    struct kvm_vcpu_events e;
    if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &e) < 0) return;
    if (!(e.exception.injected || e.exception.pending) || e.exception.nr != 1) return;
    e.exception.injected = 0;
    e.exception.pending = 0;
    ioctl(v->fd, KVM_SET_VCPU_EVENTS, &e);
}

/* An MMIO exit inside the window. It is a syscall when the access was exactly what a
 * rewritten site does: a 4-byte read of slot N that completes as a 7-byte instruction
 * leaving the sentinel in ecx (upper rcx cleared) and every other register and flag as it
 * was. Anything else (a store, another width, another instruction) is what Linux makes of
 * a user access to a kernel address: SIGSEGV at the address, registers before the access. */
static int decode_window(struct pk_vcpu *v) {
    struct kvm_run *run = v->run;
    struct kvm_regs *k = &run->s.regs.regs;
    struct user_regs_struct *u = v->regs;
    struct pk_event *ev = &v->ev;
    uint64_t va = PK_WINDOW_VA + (run->mmio.phys_addr - PK_WINDOW_GPA);
    int is_write = run->mmio.is_write, len = (int)run->mmio.len;
    struct kvm_regs before = *k;
    if (!is_write) {
        uint32_t s = WINDOW_SENTINEL;
        memset(run->mmio.data, 0, sizeof run->mmio.data);
        memcpy(run->mmio.data, &s, sizeof s);
    }
    int more = complete_mmio(v);
    if (more < 0) {
        ev->kind = PK_EV_GONE;
        ev->exit_reason = KVM_EXIT_MMIO;
        ev->detail = before.rip;
        return 1;
    }
    gprs_to_user(&before, u);
    u->rip = before.rip;
    u->rsp = before.rsp;
    u->eflags = before.rflags;
    struct kvm_regs expect = before;
    expect.rcx = WINDOW_SENTINEL;
    expect.rip = before.rip + 7;
    expect.rflags = before.rflags & ~0x10000ULL;       /* the emulator clears RF */
    struct kvm_regs got = *k;
    got.rflags &= ~0x10000ULL;
    uint64_t slot = va - PK_SYSCALL_WINDOW;
    if (!is_write && len == 4 && !more && slot < 4ULL * PK_SYSCALL_WINDOW_NR &&
        (slot & 3) == 0 && memcmp(&got, &expect, sizeof got) == 0) {
        if (before.rflags & 0x100) drop_queued_debug_trap(v);
        u->rip = before.rip + 7;
        u->rcx = u->rip;                               /* what `syscall` leaves */
        u->r11 = before.rflags & ~0x10000ULL;
        u->orig_rax = slot >> 2;
        u->rax = (uint64_t)-38;                        /* -ENOSYS, as at a syscall stop */
        v->in_user = 2;
        atomic_fetch_add_explicit(&v->vm->stat_window, 1, memory_order_relaxed);
        if (serve_here(v)) return 0;
        ev->kind = PK_EV_SYSCALL;
        ev->detail = PK_VIA_WINDOW;
        return 1;
    }
    v->in_user = 1;                 /* ring 3, in whatever state the completion left */
    u->orig_rax = (uint64_t)-1;
    ev->kind = PK_EV_FAULT;
    ev->vector = 14;
    ev->error = 0x4 | (is_write ? 0x2 : 0);            /* user, not present: SEGV_MAPERR */
    ev->cr2 = va;
    return 1;
}

/* Answer a syscall that came by a `syscall` instruction, as serve_here does; one in
 * site_probe_mask + 1 of the answered ones still stops (answered) so that the kernel sees
 * its site and may rewrite it (see pk_vm_set_site_probe). Returns 1 when it keeps running. */
static int serve_or_probe(struct pk_vcpu *v) {
    if (!serve_here(v)) return 0;
    uint32_t mask = v->vm->site_probe_mask;
    if (!mask || (++v->served_by_insn & mask) != 0) return 1;
    for (int i = 0; i < 4; i++)
        if (v->muted[i] == v->regs->rip) return 1;
    v->ev.kind = PK_EV_INTERRUPT;
    v->ev.detail = PK_VIA_PROBE;
    return 0;
}

/* The vCPU stopped in ring 3 (a kick, an instruction that could not run): the task's
 * registers are the guest's as they are, with no syscall under way. */
static void stopped_in_user(struct pk_vcpu *v) {
    struct kvm_regs *k = &v->run->s.regs.regs;
    struct user_regs_struct *u = v->regs;
    gprs_to_user(k, u);
    u->rip = k->rip;
    u->rsp = k->rsp;
    u->eflags = k->rflags;
    u->orig_rax = (uint64_t)-1;
    v->in_user = 1;
}

/* Decode a stop. Returns 1 when it is reported to the loop, 0 to keep running. */
static int decode(struct pk_vcpu *v, int rc, int err) {
    struct kvm_run *run = v->run;
    struct kvm_regs *k = &run->s.regs.regs;
    struct user_regs_struct *u = v->regs;
    struct pk_event *ev = &v->ev;
    memset(ev, 0, sizeof *ev);
    run->kvm_valid_regs = KVM_SYNC_X86_REGS;
    if (rc < 0) {
        if (err != EINTR && err != EAGAIN) {
            ev->kind = PK_EV_GONE;
            ev->exit_reason = -err;
            return 1;
        }
        if (!atomic_load(&v->kick)) return 0;          /* a stray signal: go on */
        if (k->rip >= PK_KBASE) {
            if (k->rip != pk_stub_addr(1)) return 0;    /* inside a trap: its exit follows */
            ev->kind = PK_EV_INTERRUPT;                 /* before the iretq: regs unchanged */
            return 1;
        }
        stopped_in_user(v);
        ev->kind = PK_EV_INTERRUPT;
        return 1;
    }
    if (run->exit_reason == KVM_EXIT_MMIO &&
        run->mmio.phys_addr - PK_WINDOW_GPA < PK_WINDOW_SIZE)
        return decode_window(v);
    v->in_user = 0;                 /* the exits below leave the vCPU in the ring-0 stub */
    if (run->exit_reason == KVM_EXIT_IO && run->io.port == PK_PORT_EXC) {
        uint64_t *f = (uint64_t *)(v->area + (k->rsp & (VCPU_AREA - 1)));
        /* f: cr2, rax, vector, error, rip, cs, rflags, rsp, ss */
        if ((k->rsp & ~(uint64_t)(VCPU_AREA - 1)) != PK_KBASE + SYS_VCPUS + (uint64_t)v->id * VCPU_AREA
            || (k->rsp & (VCPU_AREA - 1)) > VCPU_AREA - 72) {
            ev->kind = PK_EV_GONE;
            ev->exit_reason = run->exit_reason;
            ev->detail = k->rip;
            return 1;
        }
        gprs_to_user(k, u);
        u->rax = f[1];
        u->rip = f[4];
        u->eflags = f[6];
        u->rsp = f[7];
        if (f[2] == 14 && f[0] == pk_stub_addr(0) && f[4] == pk_stub_addr(0)) {
            /* The PVM shape of a syscall (see kvm_guest.c): rcx/r11 hold rip/rflags. */
            u->rip = k->rcx;
            u->eflags = k->r11;
            u->orig_rax = f[1];
            u->rax = (uint64_t)-38;                     /* -ENOSYS, as at a syscall stop */
            if (serve_or_probe(v)) return 0;
            if (ev->detail == PK_VIA_PROBE) return 1;
            ev->kind = PK_EV_SYSCALL;
            return 1;
        }
        if ((f[5] & 3) != 3) {                          /* a fault in the stub itself */
            /* A #PF at the stub's iretq (seen: cr2 0, error P|W|U) is what this host (PVM)
             * now and then reports for an entry of a vCPU that has been run by more than one
             * host thread, as direct runs do (never seen otherwise: docs/kvm.md, "Direct
             * runs"). Nothing of the application ran and the iret frame above the exception's
             * is intact, so the entry is made again, a few times at most. */
            if (f[2] == 14 && f[4] == pk_stub_addr(1) && v->entry_retries < ENTRY_RETRIES) {
                uint64_t *frame = (uint64_t *)(v->area + VCPU_AREA - 40);
                u->rip = frame[0];
                u->eflags = frame[2];
                u->rsp = frame[3];
                v->entry_retries++;
                v->need_sregs = 1;
                prepare_entry(v);
                atomic_fetch_add_explicit(&v->vm->stat_entry_retries, 1, memory_order_relaxed);
                return 0;
            }
            ev->kind = PK_EV_GONE;
            ev->exit_reason = run->exit_reason;
            ev->detail = f[4];
            return 1;
        }
        u->orig_rax = (uint64_t)-1;
        ev->kind = PK_EV_FAULT;
        ev->vector = (int)f[2];
        ev->error = f[3];
        ev->cr2 = f[0];
        return 1;
    }
    if (run->exit_reason == KVM_EXIT_IO && run->io.port == PK_PORT_SYSCALL) {
        /* Hardware-virtualized hosts: ring 0 at LSTAR, user rsp untouched. */
        gprs_to_user(k, u);
        u->rip = k->rcx;
        u->eflags = k->r11;
        u->rsp = k->rsp;
        u->orig_rax = k->rax;
        u->rax = (uint64_t)-38;
        if (serve_or_probe(v)) return 0;
        if (ev->detail == PK_VIA_PROBE) return 1;
        ev->kind = PK_EV_SYSCALL;
        return 1;
    }
    if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
        run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && k->rip < PK_USER_TOP) {
        /* An application instruction KVM could not emulate: the only memory it can make
         * KVM emulate is the syscall window (a kernel address to Linux), so this is what
         * Linux makes of it, a fault; the instruction did not complete. #GP: SIGSEGV. */
        stopped_in_user(v);
        ev->kind = PK_EV_FAULT;
        ev->vector = 13;
        ev->error = 0;
        return 1;
    }
    ev->kind = PK_EV_GONE;
    ev->exit_reason = (int)run->exit_reason;
    ev->detail = k->rip;
    return 1;
}

static void *vcpu_main(void *arg) {
    struct pk_vcpu *v = arg;
    tls_run = v->run;
    sigset_t only_kick;
    sigfillset(&only_kick);
    sigdelset(&only_kick, kick_signal);
    pthread_sigmask(SIG_SETMASK, &only_kick, NULL);
    for (;;) {
        uint32_t g;
        /* Usually the kernel answers within microseconds: wait for it awake, then asleep.
         * At most one vCPU thread busy-waits at a time: with the loop thread that is the two
         * CPUs of the hosts we measure on; more spinners would starve the loop itself.
         * Invariant with pk_vcpu_resume(): sleeping is set before go is re-checked and the
         * resumer sets go before it reads sleeping, so a resume is never missed. */
        if (v->spin_skip > 0) v->spin_skip--;
        else if (atomic_load(&v->vm->vcpu_spinner) == 0 &&
                 atomic_exchange(&v->vm->vcpu_spinner, 1) == 0) {
            if (!spin_until(NULL, &v->go, v->vm->vcpu_spin_usec))
                v->spin_skip = v->vm->spin_backoff;
            atomic_store(&v->vm->vcpu_spinner, 0);
        }
        while ((g = atomic_exchange(&v->go, 0)) == 0) {
            atomic_store(&v->sleeping, 1);
            if (atomic_load(&v->go) == 0) {
                atomic_fetch_add_explicit(&v->vm->stat_sleeps, 1, memory_order_relaxed);
                futex(&v->go, FUTEX_WAIT, 0);
            }
            atomic_store(&v->sleeping, 0);
        }
        if (g == 2) return NULL;
        if (atomic_load(&v->go) == 2) return NULL;
        uint64_t cpu0 = thread_cpu_ns();
        for (;;) {
            int rc = ioctl(v->fd, KVM_RUN, 0);
            int err = rc < 0 ? errno : 0;
            v->run->immediate_exit = 0;
            v->run->kvm_dirty_regs = 0;
            if (decode(v, rc, err)) break;
        }
        atomic_fetch_add(&v->cpu_ns, thread_cpu_ns() - cpu0);   /* before the stop is seen */
        report(v);
    }
}

struct pk_vcpu *pk_vcpu_get(struct pk_vm *vm, int *err) {
    for (int i = 1; i < vm->nvcpus; i++) {
        struct pk_vcpu *v = vm->vcpus[i];
        if (!v->in_use && !atomic_load(&v->running)) {
            v->in_use = 1;
            v->need_sregs = 1;
            v->served = 0;
            return v;
        }
    }
    struct pk_vcpu *v = vcpu_create(vm, err);
    if (!v) return NULL;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, 256 * 1024);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);          /* the thread starts with all blocked */
    int r = pthread_create(&v->thread, &a, vcpu_main, v);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (r) { *err = -r; return NULL; }                   /* the vCPU stays unused in the pool */
    v->has_thread = 1;
    v->in_use = 1;
    return v;
}

/* A new VM's one-time work done ahead: the first KVM_RUN of a vCPU costs ~150 µs more than
 * later ones, so the maintenance vCPU runs once, and one application vCPU is created (with
 * its thread), run once and left in the pool. Best effort: what fails here is done (or
 * reported) at first use instead. */
static void pk_vm_warm(struct pk_vm *vm) {
    pk_vcpu_warm(vm->vcpus[0]);
    int err;
    struct pk_vcpu *v = pk_vcpu_get(vm, &err);
    if (!v) return;
    pk_vcpu_warm(v);
    pk_vcpu_put(v);
}

/* ---- creation in the background ----------------------------------------------------
 * The sentry puts the sandbox together (mostly waiting for its gofer) while a host thread
 * creates and warms the VM. The thread is C only: a Python thread would need the GIL
 * between its calls and, with the loop thread busy in Python, wait for the switch interval
 * (5 ms) each time and make the loop thread give the GIL up in turn. */
struct pk_vm_creation {
    pthread_t thread;
    int memfd;
    uint64_t memsize;
    struct pk_vm *vm;
    int err;
    char msg[256];
};

static void *creation_main(void *arg) {
    struct pk_vm_creation *c = arg;
    c->vm = pk_vm_create(c->memfd, c->memsize, &c->err, c->msg, (int)sizeof c->msg);
    if (c->vm) pk_vm_warm(c->vm);
    return NULL;
}

struct pk_vm_creation *pk_vm_create_start(int memfd, uint64_t memsize) {
    struct pk_vm_creation *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->memfd = memfd;
    c->memsize = memsize;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);     /* host signals stay the sentry's */
    int r = pthread_create(&c->thread, NULL, creation_main, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r) { free(c); return NULL; }
    return c;
}

struct pk_vm *pk_vm_create_finish(struct pk_vm_creation *c, int *err, char *msg, int msglen) {
    pthread_join(c->thread, NULL);
    struct pk_vm *vm = c->vm;
    if (!vm) {
        *err = c->err;
        if (msg && msglen > 0) snprintf(msg, (size_t)msglen, "%s", c->msg);
    }
    free(c);
    return vm;
}

void pk_vcpu_put(struct pk_vcpu *v) {
    atomic_store(&v->serve, 0);     /* the next owner pushes its own ids */
    memset(v->muted, 0, sizeof v->muted);   /* and has sites of its own */
    v->as = NULL;
    /* A vCPU that stopped for good may hold state KVM left half done (an emulation): it
     * is never given to another process. */
    if (v->ev.kind != PK_EV_GONE) v->in_use = 0;
}
int pk_vcpu_id(struct pk_vcpu *v) { return v->id; }
struct pk_vcpu *pk_vcpu_by_id(struct pk_vm *vm, int id) {
    return id >= 0 && id < vm->nvcpus ? vm->vcpus[id] : NULL;
}
struct pk_event *pk_vcpu_event(struct pk_vcpu *v) { return &v->ev; }

/* Bind a stopped vCPU to the registers and address space of its next entry. */
static int bind_entry(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as) {
    if (atomic_load(&v->running)) return -EBUSY;
    if (!as) return -EINVAL;
    v->regs = regs;
    v->as = as;
    v->entry_retries = 0;
    prepare_entry(v);
    atomic_store(&v->kick, 0);
    return 0;
}

int pk_vcpu_resume(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as) {
    int err = bind_entry(v, regs, as);
    if (err) return err;
    atomic_store(&v->running, 1);
    atomic_store(&v->go, 1);
    if (atomic_load(&v->sleeping)) {
        futex(&v->go, FUTEX_WAKE, 1);
        return 1;                       /* the thread had given up waiting: a slow hand-off */
    }
    return 0;
}

void pk_vcpu_kick(struct pk_vcpu *v) {
    if (!atomic_load(&v->running)) return;
    atomic_store(&v->kick, 1);
    if (v->direct) return;   /* not started (kicks come from the loop): see run_here */
    pthread_kill(v->thread, kick_signal);
}

/* ---- direct runs on the loop thread --------------------------------------------------
 * Every hand-off between the loop and a vCPU thread is a host context switch, and in this
 * VM (PVM) a switch away from a thread with a loaded vCPU, or a cross-CPU wakeup, costs tens
 * of microseconds: a syscall through the kernel paid two. When a context is the only one
 * running, the loop runs its KVM_RUN itself at the point where it would otherwise sleep.
 * The loop must still notice its other inputs: a stop of another vCPU signals it
 * (report()), host signals interrupt KVM_RUN by themselves, and a slice timer (the time
 * until the kernel's next timer, at most the platform's slice) bounds a guest that never
 * traps, which covers fds that become ready meanwhile. Any interruption stops the guest as
 * a kick does (EV_INTERRUPT with its registers), so a context is never left half-run. */
int pk_vcpu_prepare(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as) {
    int err = bind_entry(v, regs, as);
    if (err) return err;
    v->direct = 1;
    atomic_store(&v->running, 1);
    return 0;
}

/* Adaptive direct runs. A hand-off to a vCPU thread is cheap only while the thread still
 * busy-waits for it; once the thread sleeps, the resume is a futex wakeup, and the loop's own
 * wait for the stop then mostly misses too (start-up: every hand-off slept, docs/kvm.md). So
 * a context that runs alone goes on the loop thread when its vCPU's thread is asleep. A
 * direct run leaves the thread asleep, so the thread path is tried again (a probe: the thread
 * is woken with its busy-wait back-off cleared, and the loop's too) once the kernel has
 * answered spin_backoff stops in a row within 3/4 of the thread's busy-wait, i.e. when the
 * thread would have caught them. Writing spin_skip is safe once `sleeping` is seen: the thread reads it again only
 * after its next go. */
int pk_vcpu_choose_direct(struct pk_vcpu *v) {
    struct pk_vm *vm = v->vm;
    uint64_t held = now_ns() - v->stop_ns;
    if (held < (uint64_t)vm->vcpu_spin_usec * 750) v->quick_stops++;
    else v->quick_stops = 0;
    if (!v->has_thread || !atomic_load(&v->sleeping)) return 0;   /* caught awake: hand over */
    if (vm->vcpu_spin_usec <= 0 || v->quick_stops < vm->spin_backoff) return 1;
    v->quick_stops = 0;
    v->spin_skip = 0;
    vm->spin_skip = 0;          /* and the loop busy-waits for the probe's stop (pk_vm_spin) */
    vm->stat_thread_probes++;
    return 0;
}

/* Two runnable contexts run better on two vCPU threads, with the loop asleep, than one on
 * the loop thread beside a woken thread that the host may queue on the loop's CPU (a child
 * polling while its parent spun got no CPU until the parent's next syscall). So a prepared
 * direct run goes to the vCPU's own thread when a second context is resumed; it was
 * prepared, so the thread only needs its go. A kicked one stays: run_here stops it at once
 * (the kick sent no signal, see pk_vcpu_kick). */
int pk_vcpu_hand_to_thread(struct pk_vcpu *v) {
    if (!v->direct || !v->has_thread || atomic_load(&v->kick)) return 0;
    v->direct = 0;
    atomic_store(&v->go, 1);
    if (atomic_load(&v->sleeping)) futex(&v->go, FUTEX_WAKE, 1);
    return 1;
}

void pk_vcpu_cancel_direct(struct pk_vcpu *v) {
    if (!v->direct) return;
    v->direct = 0;
    atomic_store(&v->kick, 0);
    atomic_store(&v->running, 0);
}

static int slice_timer_for_caller(struct pk_vm *vm) {
    int tid = (int)syscall(SYS_gettid);
    if (vm->loop_tid == tid) return 0;
    if (vm->loop_tid) timer_delete(vm->slice_timer);
    vm->loop_tid = 0;
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = kick_signal;
#ifdef sigev_notify_thread_id
    sev.sigev_notify_thread_id = tid;
#else
    sev._sigev_un._tid = tid;
#endif
    if (timer_create(CLOCK_MONOTONIC, &sev, &vm->slice_timer) < 0) return -errno;
    vm->loop_tid = tid;
    vm->loop_thread = pthread_self();
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, kick_signal);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    return 0;
}

static void arm_slice(struct pk_vm *vm, int usec) {
    struct itimerspec it;
    memset(&it, 0, sizeof it);
    if (usec > 0) {
        it.it_value.tv_sec = usec / 1000000;
        it.it_value.tv_nsec = (long)(usec % 1000000) * 1000;
    }
    timer_settime(vm->slice_timer, 0, &it, NULL);
}

int pk_vcpu_run_here(struct pk_vcpu *v, int slice_usec) {
    struct pk_vm *vm = v->vm;
    if (!v->direct || !atomic_load(&v->running)) return -EINVAL;
    uint64_t t_start = now_ns();
    int r = slice_timer_for_caller(vm);
    if (r) return r;
    tls_run = v->run;
    atomic_store(&vm->loop_in_guest, 1);
    if (atomic_load(&vm->ring_count)) {       /* report() may have missed the flag */
        atomic_store(&vm->loop_in_guest, 0);
        tls_run = NULL;
        return 0;
    }
    if (atomic_load(&v->kick)) {
        /* Kicked before it ran: stop before the iretq with the registers as prepared,
         * without entering KVM (no immediate_exit entry between an exit and the next). */
        memset(&v->ev, 0, sizeof v->ev);
        v->ev.kind = PK_EV_INTERRUPT;
        v->need_sregs = 1;      /* the prepared sregs never reached KVM */
        goto stopped;
    }
    arm_slice(vm, slice_usec > 0 ? slice_usec : 1);
    uint64_t cpu0 = thread_cpu_ns();
    for (;;) {
        uint64_t t0 = now_ns();
        int rc = ioctl(v->fd, KVM_RUN, 0);
        int err = rc < 0 ? errno : 0;
        vm->stat_direct_run_ns += now_ns() - t0;
        vm->stat_direct_ioctls++;
        v->run->immediate_exit = 0;
        v->run->kvm_dirty_regs = 0;
        /* Whatever interrupted the run (the slice, another vCPU's stop, a host signal, the
         * kernel's kick) is a reason to hand the loop back: stop as a kick would. */
        if (rc < 0 && (err == EINTR || err == EAGAIN)) atomic_store(&v->kick, 1);
        if (decode(v, rc, err)) break;
    }
    atomic_fetch_add(&v->cpu_ns, thread_cpu_ns() - cpu0);
    arm_slice(vm, 0);
stopped:
    atomic_store(&vm->loop_in_guest, 0);
    tls_run = NULL;
    v->direct = 0;
    vm->stat_direct++;
    /* Onto the ring like a thread's stop, but the loop is this thread: no wakeup. */
    push_stop(v);
    vm->stat_direct_ns += now_ns() - t_start;
    return 1;
}

int pk_vcpu_get_xsave(struct pk_vcpu *v, void *buf) {
    if (atomic_load(&v->running)) return -EBUSY;
    return ioctl(v->fd, KVM_GET_XSAVE, buf) < 0 ? -errno : 0;
}
int pk_vcpu_set_xsave(struct pk_vcpu *v, const void *buf) {
    if (atomic_load(&v->running)) return -EBUSY;
    return ioctl(v->fd, KVM_SET_XSAVE, buf) < 0 ? -errno : 0;
}
