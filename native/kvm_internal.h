/* Internals shared by kvm_vm.c, kvm_mmu.c and kvm_guest.c (not part of the cffi interface). */
#ifndef PK_INTERNAL_H
#define PK_INTERNAL_H
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <linux/kvm.h>
#include "kvm_core.h"

/* System area offsets (from PK_SYS_GPA / PK_KBASE). */
#define SYS_CODE    0x0000     /* 2 pages of stub code */
#define SYS_IDT     0x2000
#define SYS_IDLE    0x3000     /* a PML4 with only the kernel half: cr3 of idle vCPUs */
#define SYS_KPDPT   0x4000
#define SYS_KPD_SYS 0x5000
#define SYS_KPD_PT  0x6000
#define SYS_KPD_WINDOW 0x7000  /* directory of the last GiB: the syscall window */
#define SYS_BATCH   0x8000     /* maintenance batch: 24-byte entries up to SYS_VCPUS */
#define SYS_BATCH_END 0x100000
#define SYS_VCPUS   0x100000   /* vCPU i: GDT+TSS page, then its ring-0 stack page */
#define VCPU_AREA   0x2000
#define TSS_OFF     0x100

/* The 2 MiB page holding PK_SYSCALL_WINDOW: user-readable, NX, mapped to a guest-physical
 * range with no memory slot (every access is an MMIO exit). */
#define PK_WINDOW_VA   0xffffffffffc00000ULL
#define PK_WINDOW_GPA  0x38000000000ULL
#define PK_WINDOW_SIZE 0x200000ULL

/* KVM memory slots. KVM allocates (and zeroes) per-page metadata when a slot is made and
 * frees it with the VM, ~1 ms per GiB each way on this host, so guest memory gets its slots
 * as it is first used, in pieces: the page-table pool in 64 MiB pieces, the memory file in
 * pieces of vm->mem_piece bytes (64 MiB, or more where KVM offers fewer slots than a
 * terabyte of 64 MiB pieces needs). The file's runs are spread (a brk or stack run
 * reserves 256 MiB), so even /bin/true touches offsets past its first GiB. */
#define SLOT_SYS       0
#define SLOT_PT        1                          /* + piece of the page-table pool */
#define PT_SLOT_SIZE   0x4000000ULL
#define SLOT_MEM       (SLOT_PT + (int)(PK_PT_SIZE / PT_SLOT_SIZE))   /* + piece of the file */
#define MEM_PIECE_MIN  0x4000000ULL

#define SEL_KCODE 0x10
#define SEL_KDATA 0x18
#define SEL_UDATA 0x2b
#define SEL_UCODE 0x33
#define SEL_TSS   0x40

/* Page-table entry bits. */
#define PTE_P   0x1ULL
#define PTE_W   0x2ULL
#define PTE_U   0x4ULL
#define PTE_A   0x20ULL
#define PTE_D   0x40ULL
#define PTE_PS  0x80ULL
#define PTE_PROTNONE 0x200ULL   /* software bit: not present, but the frame is remembered */
#define PTE_NX  (1ULL << 63)
#define PTE_ADDR 0x000ffffffffff000ULL

struct batch_entry { uint64_t va, val, size; };

struct pk_vcpu {
    struct pk_vm *vm;
    int id;
    int fd;
    struct kvm_run *run;
    pthread_t thread;
    int has_thread;
    int in_use;
    /* Loop thread -> vCPU thread. */
    _Atomic uint32_t go;              /* futex word: 1 = run, 2 = quit */
    _Atomic int kick;                 /* the kernel asked for a stop */
    _Atomic int running;              /* between resume and the report of its stop */
    _Atomic int sleeping;             /* in (or about to enter) FUTEX_WAIT on go */
    int spin_skip;                    /* busy-waits for go left to skip after one timed out */
    /* Syscalls answered by this thread (see served_slot in kvm_vm.c): the values the kernel
     * pushed for its task, and whether it may answer at all (never under --strace). */
    _Atomic int serve;
    _Atomic int64_t ids[PK_ID_COUNT];
    uint64_t served;                  /* how many it answered (tests, benchmarks) */
    /* Host CPU time spent running the guest and answering syscalls in C, from a resume to
     * its stop (not the waits between): the application's CPU time (pk_vcpu_cpu_ns). */
    _Atomic uint64_t cpu_ns;
    uint32_t served_by_insn;          /* answered ones that came by a `syscall` (site probes) */
    uint64_t muted[4];                /* return addresses of sites not to probe (a ring) */
    int nmuted;
    struct user_regs_struct *regs;    /* the context's registers, valid while running */
    struct pk_as *as;
    /* State the vCPU thread keeps between runs. */
    uint64_t loaded_as_id;            /* whose cr3 is loaded (0: none / idle) */
    uint64_t fs_base, gs_base;
    /* Stopped in ring 3: 1 (a kick, a fault at the window) the next entry sets sregs and goes
     * through the stub; 2 (a syscall at a rewritten site) cr3/fs/gs are still the loaded ones,
     * so an entry with the same ones may load the registers and run ring 3 directly. */
    int in_user;
    int need_sregs;
    int direct;                       /* prepared for a run on the loop thread (pk_vcpu_run_here) */
    /* Adaptive direct runs (pk_vcpu_choose_direct): when its last stop went onto the ring
     * (read by the loop once it collected that stop), and how many stops in a row the kernel
     * answered within the thread's busy-wait (loop thread only). */
    uint64_t stop_ns;
    int quick_stops;
    int entry_retries;                /* of the current entry (decode, ENTRY_RETRIES) */
    struct kvm_sregs sregs0;          /* ring-0 template */
    uint8_t *area;                    /* host view of its GDT/TSS page + stack page */
    struct pk_event ev;
};

struct pk_vm {
    int kvm_fd, vm_fd, event_fd;
    int run_size;
    uint8_t *sys;                 /* host view of the system area */
    uint8_t *pt;                  /* host view of the page-table pool */
    uint8_t *mem;                 /* host view of the memory file */
    uint64_t memsize;
    uint64_t mem_piece;           /* bytes of the memory file per KVM slot */
    uint8_t *slot_made;           /* per piece of the memory file */
    uint32_t pt_slots_made;       /* bit i: the page-table pool's piece i has its slot */
    struct kvm_cpuid2 *cpuid;
    uint64_t xcr0;
    int xstate_size;
    /* page-table pool */
    uint64_t pt_bump;
    uint64_t *clean, *dirty;      /* free page GPAs: clean ones are zero and unknown to KVM */
    int nclean, ndirty, cap_clean, cap_dirty;
    uint64_t next_as_id;
    /* the batch of guest-performed writes being built */
    int nbatch;
    uint64_t stat_runs, stat_writes, stat_replaced;
    uint64_t stat_kept, stat_relinked;    /* leaf tables kept when swapped out / linked again */
    /* vCPUs; vcpus[0] is the maintenance vCPU, run on the loop thread only */
    struct pk_vcpu *vcpus[PK_MAX_VCPUS];
    int nvcpus;
    pthread_mutex_t lock;         /* the completion ring */
    int ring[PK_MAX_VCPUS + 1];
    int ring_head, ring_tail;
    _Atomic int ring_count;       /* entries in the ring, readable without the lock */
    /* The loop is busy-waiting on ring_count (pk_vm_spin): a stop needs no eventfd write. */
    _Atomic int loop_spinning;
    _Atomic int efd_written;      /* the eventfd may be readable: the next collect drains it */
    int vcpu_spin_usec;           /* how long a stopped vCPU thread busy-waits for its resume */
    uint32_t site_probe_mask;     /* pk_vm_set_site_probe: 2^k - 1, or 0 (no probes) */
    int spin_backoff;             /* waits a side skips after one of its waits timed out */
    int spin_skip;                /* pk_vm_spin calls left to skip after a wait timed out */
    _Atomic int vcpu_spinner;     /* a vCPU thread is busy-waiting for its resume */
    _Atomic uint64_t stat_served; /* syscalls answered on vCPU threads */
    _Atomic uint64_t stat_wakes;  /* eventfd writes (the loop had to be woken) */
    _Atomic uint64_t stat_sleeps; /* vCPU threads that slept in FUTEX_WAIT for a resume */
    _Atomic uint64_t stat_spin_hits; /* stops the loop caught while busy-waiting */
    _Atomic uint64_t stat_window; /* syscalls that came through the window (rewritten sites) */
    /* Direct runs: the loop thread itself runs KVM_RUN for a context (pk_vcpu_run_here). */
    _Atomic int loop_in_guest;    /* the loop thread is in (or entering) a direct KVM_RUN */
    pthread_t loop_thread;
    int loop_tid;                 /* the thread the slice timer signals (0: no timer yet) */
    timer_t slice_timer;
    uint64_t stat_direct;         /* stops reached by direct runs */
    uint64_t stat_direct_ns, stat_direct_run_ns, stat_direct_ioctls;
    uint64_t stat_thread_probes;  /* adaptive direct runs that tried the vCPU thread again */
    _Atomic uint64_t stat_entry_retries; /* entries made again after a spurious fault (decode) */
};

/* Leaf tables an address space keeps after swapping them out (kvm_mmu.c, keep_table). */
#define PK_KEPT_TABLES 8

struct pk_as {
    struct pk_vm *vm;
    uint64_t id;
    uint64_t pml4;                /* GPA */
    struct { uint64_t va, gpa; } kept[PK_KEPT_TABLES];   /* oldest first */
    int nkept;
};

/* kvm_guest.c */
uint64_t pk_stub_addr(int which);   /* 0 lstar, 1 iret, 2 maintenance, 3 vectors */
void pk_guest_build_system(struct pk_vm *vm);
void pk_guest_build_vcpu(struct pk_vm *vm, struct pk_vcpu *v);
void pk_guest_sregs0(struct pk_vm *vm, struct pk_vcpu *v, struct kvm_sregs *s);
/* kvm_mmu.c */
int pk_mmu_init(struct pk_vm *vm);
int pk_maintenance_run(struct pk_vm *vm, uint64_t cr3);
int pk_vcpu_warm(struct pk_vcpu *v);
int pk_ensure_slot(struct pk_vm *vm, uint64_t off);
uint64_t pk_mem_piece_size(uint64_t memsize, int nr_memslots);
#endif
