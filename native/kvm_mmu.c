/* Guest page tables, built by the sentry from its address-space mappings.
 *
 * The constraint that shapes this file: KVM's shadow MMU (the only MMU on a PVM host, and
 * the one nested setups fall back to) keeps its own copy of each guest page-table page and
 * learns of changes only from *guest* writes. The host may therefore write an entry itself
 * only when it goes from not-present to present (nothing can have been cached for it).
 * Every other change - unmap, a narrower protection, a new frame for a COW break - is
 * queued in a batch that the ring-0 stub applies on the maintenance vCPU, followed by two
 * cr3 loads that make KVM resync; KVM then flushes every vCPU's view itself.
 *
 * When many entries of one leaf table change, the table is replaced instead: a fresh page
 * (unknown to KVM) gets the new contents from the host, and one guest write swaps the
 * directory entry. Freed table pages are "scrubbed" by a misaligned 2-byte guest write,
 * which makes KVM drop any shadow of them, before they are reused.
 *
 * A leaf table whose whole 2 MiB is unmapped is unlinked and *kept* as it is (see
 * keep_table): KVM keeps its shadow of it, and a later mapping that would write exactly the
 * same entries links it back, so the stores to that mapping need no shadow faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include "kvm_internal.h"

#define REPLACE_THRESHOLD 8       /* present-entry changes in one table that justify a swap */
#define BATCH_MAX ((SYS_BATCH_END - SYS_BATCH) / sizeof(struct batch_entry))

static inline uint64_t *pt_host(struct pk_vm *vm, uint64_t gpa) {
    return (uint64_t *)(vm->pt + (gpa - PK_PT_GPA));
}
static inline uint64_t pt_window(uint64_t gpa) { return PK_KPT + (gpa - PK_PT_GPA); }

static int push(uint64_t **arr, int *n, int *cap, uint64_t v) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 256;
        uint64_t *na = realloc(*arr, (size_t)nc * sizeof(uint64_t));
        if (!na) return -ENOMEM;
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

int pk_mmu_init(struct pk_vm *vm) {
    vm->pt_bump = PK_PT_GPA;
    return 0;
}

static struct batch_entry *batch(struct pk_vm *vm) {
    return (struct batch_entry *)(vm->sys + SYS_BATCH);
}

/* Run the stub's maintenance entry on v: the first n entries of the batch under cr3. */
static int run_batch(struct pk_vcpu *v, uint64_t cr3, int n) {
    struct kvm_regs r;
    memset(&r, 0, sizeof r);
    r.rip = pk_stub_addr(2);
    r.rsp = PK_KBASE + SYS_VCPUS + (uint64_t)v->id * VCPU_AREA + VCPU_AREA;   /* unused */
    r.rflags = 2;
    r.rbx = cr3;
    r.rdx = PK_SYS_GPA + SYS_IDLE;
    r.rsi = PK_KBASE + SYS_BATCH;
    r.rcx = (uint64_t)n;
    if (ioctl(v->fd, KVM_SET_REGS, &r) < 0) return -errno;
    int rc;
    do rc = ioctl(v->fd, KVM_RUN, 0); while (rc < 0 && (errno == EINTR || errno == EAGAIN));
    if (rc < 0) return -errno;
    if (v->run->exit_reason != KVM_EXIT_IO || v->run->io.port != PK_PORT_DONE)
        return -EIO;
    return 0;
}

/* A vCPU's first KVM_RUN costs ~150 us more than the next ones here (KVM's and the
 * hypervisor's one-time work); an empty maintenance batch under the idle address space
 * pays it ahead, wherever that is cheaper (pk_vm_warm). */
int pk_vcpu_warm(struct pk_vcpu *v) {
    return run_batch(v, PK_SYS_GPA + SYS_IDLE, 0);
}

/* Apply the queued batch (and scrub freed pages) under cr3, on the maintenance vCPU. */
int pk_maintenance_run(struct pk_vm *vm, uint64_t cr3) {
    struct batch_entry *b = batch(vm);
    int scrubbed = 0;
    while (vm->ndirty && vm->nbatch < (int)BATCH_MAX) {
        uint64_t gpa = vm->dirty[--vm->ndirty];
        b[vm->nbatch++] = (struct batch_entry){pt_window(gpa), 0, 2};
        scrubbed++;
    }
    if (vm->nbatch == 0) return 0;
    int r = run_batch(vm->vcpus[0], cr3, vm->nbatch);
    if (r) return r;
    vm->stat_runs++;
    vm->stat_writes += (uint64_t)vm->nbatch;
    /* The scrubbed pages are now unknown to KVM: zero them and make them reusable. The
     * entries at the end of the batch are exactly those scrubs. */
    for (int i = vm->nbatch - scrubbed; i < vm->nbatch; i++) {
        uint64_t gpa = b[i].va - PK_KPT + PK_PT_GPA;
        memset(pt_host(vm, gpa), 0, 4096);
        if (push(&vm->clean, &vm->nclean, &vm->cap_clean, gpa)) return -ENOMEM;
    }
    vm->nbatch = 0;
    return 0;
}

static int queue_write(struct pk_vm *vm, uint64_t gpa_of_entry, uint64_t val, uint64_t cr3) {
    if (vm->nbatch >= (int)BATCH_MAX) {
        int r = pk_maintenance_run(vm, cr3);
        if (r) return r;
    }
    batch(vm)[vm->nbatch++] = (struct batch_entry){pt_window(gpa_of_entry), val, 8};
    return 0;
}

_Static_assert(PK_PT_SIZE / PT_SLOT_SIZE <= 32, "pt_slots_made has a bit per piece");

/* The KVM slot of the page-table pool's piece holding gpa. */
static int ensure_pt_slot(struct pk_vm *vm, uint64_t gpa) {
    uint64_t piece = (gpa - PK_PT_GPA) / PT_SLOT_SIZE;
    if (vm->pt_slots_made & (1u << piece)) return 0;
    struct kvm_userspace_memory_region r = {
        .slot = (uint32_t)(SLOT_PT + piece), .guest_phys_addr = PK_PT_GPA + piece * PT_SLOT_SIZE,
        .memory_size = PT_SLOT_SIZE, .userspace_addr = (uint64_t)(vm->pt + piece * PT_SLOT_SIZE)};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) return -errno;
    vm->pt_slots_made |= 1u << piece;
    return 0;
}

/* A zeroed page-table page that KVM has no shadow of. Pages come from the bump pointer only
 * once, so every page handed out lies in a piece that has its slot. Freed pages wait to be
 * scrubbed by the next maintenance run that happens anyway (pk_maintenance_run adds them to
 * every batch); a run of scrubs alone is paid only when SCRUB_AT of them wait or the pool
 * has no fresh page left. (Scrubbing the one freed page as soon as it was wanted cost a
 * run at every execve: the first address space's page-table root.) */
#define SCRUB_AT 64
static int64_t pt_alloc(struct pk_vm *vm) {
    if (vm->nclean == 0 && vm->ndirty > 0 &&
        (vm->ndirty >= SCRUB_AT || vm->pt_bump >= PK_PT_GPA + PK_PT_SIZE)) {
        int r = pk_maintenance_run(vm, PK_SYS_GPA + SYS_IDLE);
        if (r) return r;
    }
    if (vm->nclean) return (int64_t)vm->clean[--vm->nclean];
    if (vm->pt_bump >= PK_PT_GPA + PK_PT_SIZE) return -ENOMEM;
    uint64_t g = vm->pt_bump;
    int r = ensure_pt_slot(vm, g);
    if (r) return r;
    vm->pt_bump += 4096;
    return (int64_t)g;
}
static void pt_free(struct pk_vm *vm, uint64_t gpa) {
    push(&vm->dirty, &vm->ndirty, &vm->cap_dirty, gpa);
}

/* A page-table page for as: when the pool has none left, as's kept tables (see
 * keep_table) are given back first. Freeing one whose unlinking write is still queued is
 * safe: pt_alloc's maintenance run applies the queued writes before the scrubs it adds. */
static int64_t pt_alloc_as(struct pk_as *as) {
    int64_t g = pt_alloc(as->vm);
    if (g != -ENOMEM || as->nkept == 0) return g;
    for (int i = 0; i < as->nkept; i++) pt_free(as->vm, as->kept[i].gpa);
    as->nkept = 0;
    return pt_alloc(as->vm);
}

struct pk_as *pk_as_create(struct pk_vm *vm) {
    int64_t g = pt_alloc(vm);
    if (g < 0) return NULL;
    struct pk_as *as = calloc(1, sizeof *as);
    if (!as) { pt_free(vm, (uint64_t)g); return NULL; }
    as->vm = vm;
    as->id = ++vm->next_as_id;
    as->pml4 = (uint64_t)g;
    /* U here only opens the way to the syscall window: the entries below it are supervisor-
     * only except the window's (kvm_guest.c), and x86 needs U at every level. */
    pt_host(vm, as->pml4)[511] = (PK_SYS_GPA + SYS_KPDPT) | PTE_P | PTE_W | PTE_U | PTE_A;
    return as;
}

static void free_tree(struct pk_vm *vm, uint64_t gpa, int level) {
    if (level > 1) {
        uint64_t *t = pt_host(vm, gpa);
        int top = level == 4 ? 256 : 512;        /* the kernel half is shared: never freed */
        for (int i = 0; i < top; i++)
            if (t[i] & PTE_P) free_tree(vm, t[i] & PTE_ADDR, level - 1);
    }
    pt_free(vm, gpa);
}

void pk_as_release(struct pk_as *as) {
    if (!as) return;
    /* The walk reads the host's view of the tables, which a queued guest write (a table
     * unlinked and kept) has not reached yet: apply the queue first. If that fails, the
     * kept tables may still be linked in the host's view and would be freed twice (once by
     * the walk): they are leaked instead. */
    int flushed = as->vm->nbatch == 0 || pk_maintenance_run(as->vm, as->pml4) == 0;
    free_tree(as->vm, as->pml4, 4);
    if (flushed)
        for (int i = 0; i < as->nkept; i++) pt_free(as->vm, as->kept[i].gpa);
    free(as);
}

static uint64_t leaf_bits(int prot) {
    /* PROT_READ 1, PROT_WRITE 2, PROT_EXEC 4: x86 cannot express write- or exec-only. */
    uint64_t b = PTE_P | PTE_U | PTE_A | PTE_D;
    if (prot & 2) b |= PTE_W;
    if (!(prot & 4)) b |= PTE_NX;
    return b;
}

#define DIR_BITS (PTE_P | PTE_W | PTE_U | PTE_A)     /* of every entry above the leaves */

/* The directory entry (GPA) that points at the leaf table covering va, creating the levels
 * above it when create is set; 0 when they are absent. Upper-level entries only ever go
 * from absent to present here, and stay until the address space is released. */
static int64_t pde_at(struct pk_as *as, uint64_t va, int create) {
    struct pk_vm *vm = as->vm;
    uint64_t table = as->pml4;
    for (int level = 4; level > 2; level--) {
        int idx = (int)((va >> (12 + 9 * (level - 1))) & 511);
        uint64_t *e = pt_host(vm, table) + idx;
        if (!(*e & PTE_P)) {
            if (!create) return 0;
            int64_t g = pt_alloc_as(as);
            if (g < 0) return g;
            *e = (uint64_t)g | DIR_BITS;
        }
        table = *e & PTE_ADDR;
    }
    return (int64_t)(table + ((va >> 21) & 511) * 8);
}

/* The leaf table covering va (GPA), creating it and the levels above when create is set;
 * 0 when absent. */
static int64_t leaf_table(struct pk_as *as, uint64_t va, int create) {
    int64_t pde = pde_at(as, va, create);
    if (pde <= 0) return pde;
    uint64_t *e = pt_host(as->vm, (uint64_t)pde);
    if (!(*e & PTE_P)) {
        if (!create) return 0;
        int64_t g = pt_alloc_as(as);
        if (g < 0) return g;
        *e = (uint64_t)g | DIR_BITS;
    }
    return (int64_t)(*e & PTE_ADDR);
}

enum op { OP_MAP, OP_UNMAP, OP_PROTECT };

/* New value of one entry under op; old is the current one. */
static uint64_t new_entry(enum op op, uint64_t old, uint64_t frame, int prot) {
    switch (op) {
    case OP_MAP:
        return prot ? (frame | leaf_bits(prot)) : (frame | PTE_PROTNONE);
    case OP_UNMAP:
        return 0;
    case OP_PROTECT:
        if (!(old & (PTE_P | PTE_PROTNONE))) return old;     /* never mapped: stays lazy */
        frame = old & PTE_ADDR;
        return prot ? (frame | leaf_bits(prot)) : (frame | PTE_PROTNONE);
    }
    return old;
}

/* Kept leaf tables. A leaf table is swapped out of its directory entry by one guest write
 * when many of its entries change (a munmap or mprotect of more than REPLACE_THRESHOLD
 * present pages), or cleared out of it when it empties. KVM then only unlinks its shadow
 * of the table, which stays valid and write-tracked; freeing (scrubbing) the table would
 * throw that away, and the next time the same entries are wanted, as when a program maps
 * and unmaps the same range over and over, KVM would fault them all in again (~34 shadow
 * faults per MiB here: docs/kvm.md, "The 1 MiB mmap/touch/munmap loop"). So a table
 * swapped out is kept, untouched, with its 2 MiB, and when a change of that 2 MiB would
 * produce exactly the 512 entries of a kept table, that table is linked instead.
 * Invariants:
 * - a kept table is linked nowhere: it is kept only once the guest write that unlinks it
 *   is queued (applied before the operation returns), and it leaves the list when it is
 *   linked again; so nothing reaches its entries, however stale they are for the model;
 * - nobody writes a kept table (KVM would not see a host write): it is linked only when it
 *   holds exactly the entries the operation would give the table, so the guest sees
 *   exactly those, and KVM's shadow, derived from them, is exact (KVM drops shadow entries
 *   of host pages that went away, e.g. hole-punched, itself; entries the host wrote while
 *   the table was linked were absent for KVM, which faults them in as for any table);
 * - at most PK_KEPT_TABLES per address space, the oldest going first, and all go with the
 *   address space. Going = pt_free (scrubbed before reuse, which drops KVM's shadow). */
static void keep_table(struct pk_as *as, uint64_t va, uint64_t gpa) {
    if (as->nkept == PK_KEPT_TABLES) {
        pt_free(as->vm, as->kept[0].gpa);
        memmove(as->kept, as->kept + 1, sizeof as->kept[0] * (PK_KEPT_TABLES - 1));
        as->nkept--;
    }
    as->kept[as->nkept].va = va & ~0x1fffffULL;
    as->kept[as->nkept].gpa = gpa;
    as->nkept++;
    as->vm->stat_kept++;
}

/* The kept table of va's 2 MiB whose entries are exactly want[512], taken off the list
 * (its GPA), or 0. */
static uint64_t take_kept(struct pk_as *as, uint64_t va, const uint64_t *want) {
    uint64_t base = va & ~0x1fffffULL;
    for (int k = as->nkept - 1; k >= 0; k--) {              /* the newest first */
        if (as->kept[k].va != base || memcmp(pt_host(as->vm, as->kept[k].gpa), want, 4096))
            continue;
        uint64_t gpa = as->kept[k].gpa;
        memmove(as->kept + k, as->kept + k + 1, sizeof as->kept[0] * (size_t)(as->nkept - k - 1));
        as->nkept--;
        as->vm->stat_relinked++;
        return gpa;
    }
    return 0;
}

static int is_empty(const uint64_t *table) {
    for (int i = 0; i < 512; i++)
        if (table[i]) return 0;
    return 1;
}

static int apply_chunks(struct pk_as *as, enum op op, uint64_t va, uint64_t len, uint64_t off,
                        int prot);

/* Errors leave the entries done so far in place (the caller takes the range away again:
 * KvmAddressSpace.map_memfile) but never a write queued: every exit applies the queue, so
 * the host's view of the tables is the guest's and the kept list holds only tables that
 * are unlinked (a kept table still linked would be freed twice by pk_as_release and the
 * page given to two tables: review3 F1). Unmap and protect allocate no page-table page when
 * the pool is empty (they write entry by entry instead), so taking a range away works when
 * mapping it failed for want of pages. */
static int apply(struct pk_as *as, enum op op, uint64_t va, uint64_t len, uint64_t off, int prot) {
    struct pk_vm *vm = as->vm;
    if ((va | len | off) & 0xfff) return -EINVAL;
    if (va >= PK_USER_TOP || len > PK_USER_TOP - va) return -EINVAL;
    int err = apply_chunks(as, op, va, len, off, prot);
    if (vm->nbatch) {
        int r = pk_maintenance_run(vm, as->pml4);
        if (!err) err = r;
    }
    return err;
}

static int apply_chunks(struct pk_as *as, enum op op, uint64_t va, uint64_t len, uint64_t off,
                        int prot) {
    struct pk_vm *vm = as->vm;
    uint64_t end = va + len;
    static const uint64_t no_entries[512];
    uint64_t want[512];                     /* a leaf table's entries after the operation */
    while (va < end) {
        uint64_t chunk_end = (va | 0x1fffff) + 1;            /* one leaf table's reach */
        if (chunk_end > end) chunk_end = end;
        int first = (int)((va >> 12) & 511), n = (int)((chunk_end - va) >> 12);
        if (op == OP_MAP) {
            int r = pk_ensure_slot(vm, off);
            if (!r) r = pk_ensure_slot(vm, off + ((uint64_t)(n - 1) << 12));
            if (r) return r;
        }
        int64_t t = leaf_table(as, va, 0);
        if (t < 0) return (int)t;
        if (t == 0 && op != OP_MAP) {       /* nothing mapped here: unmap/protect skip it */
            off += chunk_end - va;
            va = chunk_end;
            continue;
        }
        const uint64_t *pt = t ? pt_host(vm, (uint64_t)t) : no_entries;
        int changes = 0, differs = 0;       /* present entries changing; any changing */
        for (int i = 0; i < n; i++) {
            uint64_t old = pt[first + i];
            uint64_t nw = new_entry(op, old, off + ((uint64_t)i << 12), prot);
            differs += old != nw;
            if (old != nw && (old & PTE_P)) changes++;
        }
        /* Where a kept table may hold the result (a mapping, or a change that would rebuild
         * the table anyway), compute it aside and link that table if one holds it. */
        if (differs && (changes > REPLACE_THRESHOLD || (op == OP_MAP && as->nkept))) {
            memcpy(want, pt, 4096);
            for (int i = 0; i < n; i++)
                want[first + i] = new_entry(op, pt[first + i], off + ((uint64_t)i << 12), prot);
            uint64_t k = as->nkept && !is_empty(want) ? take_kept(as, va, want) : 0;
            int r = 0;
            if (k && t == 0) {
                /* Absent -> present: the host may write the directory entry (nothing was
                 * cached for an absent one); the levels above exist, the table was here. */
                int64_t pde = pde_at(as, va, 1);
                if (pde <= 0) return pde < 0 ? (int)pde : -EIO;
                *pt_host(vm, (uint64_t)pde) = k | DIR_BITS;
            } else if (k || changes > REPLACE_THRESHOLD) {
                /* Swap the directory entry with one guest write: to the kept table, to
                 * nothing when the table empties, else to a fresh page built aside; the
                 * table swapped out is kept. */
                uint64_t val = k ? k | DIR_BITS : 0;
                int64_t g = 0;
                if (!k && !is_empty(want)) {
                    g = pt_alloc_as(as);
                    if (g < 0 && !(g == -ENOMEM && op != OP_MAP)) return (int)g;
                }
                if (g >= 0) {
                    if (g > 0) {
                        memcpy(pt_host(vm, (uint64_t)g), want, 4096);
                        val = (uint64_t)g | DIR_BITS;
                    }
                    r = queue_write(vm, (uint64_t)pde_at(as, va, 0), val, as->pml4);
                    if (r) return r;
                    keep_table(as, va, (uint64_t)t);
                    vm->stat_replaced++;
                }
                /* else: no page to build the new table on; entry by entry below. */
                else k = 0, changes = 0;
            }
            if (k || changes > REPLACE_THRESHOLD) {
                off += chunk_end - va;
                va = chunk_end;
                continue;
            }
        }
        if (t == 0) {
            t = leaf_table(as, va, 1);
            if (t < 0) return (int)t;
        }
        /* Entry by entry: absent -> present from the host, the others as guest writes. */
        uint64_t *lt = pt_host(vm, (uint64_t)t);
        for (int i = 0; differs && i < n; i++) {
            uint64_t old = lt[first + i];
            uint64_t nw = new_entry(op, old, off + ((uint64_t)i << 12), prot);
            if (old == nw) continue;
            if (!(old & PTE_P)) {
                lt[first + i] = nw;               /* nothing cached for an absent entry */
            } else {
                int r = queue_write(vm, (uint64_t)t + (uint64_t)(first + i) * 8, nw, as->pml4);
                if (r) return r;
            }
        }
        off += chunk_end - va;
        va = chunk_end;
    }
    return 0;
}

int pk_as_map(struct pk_as *as, uint64_t va, uint64_t len, uint64_t off, int prot) {
    if (off + len > as->vm->memsize || off + len < off) return -EINVAL;
    return apply(as, OP_MAP, va, len, off, prot);
}
int pk_as_unmap(struct pk_as *as, uint64_t va, uint64_t len) {
    return apply(as, OP_UNMAP, va, len, 0, 0);
}
int pk_as_protect(struct pk_as *as, uint64_t va, uint64_t len, int prot) {
    return apply(as, OP_PROTECT, va, len, 0, prot);
}
uint64_t pk_as_lookup(struct pk_as *as, uint64_t va) {
    int64_t t = leaf_table(as, va, 0);
    if (t <= 0) return 0;
    return pt_host(as->vm, (uint64_t)t)[(va >> 12) & 511];
}

/* The smallest power-of-two piece, at least MEM_PIECE_MIN, that covers the memory file with
 * the slots KVM offers (nr_memslots, KVM_CAP_NR_MEMSLOTS) after the system's and the pool's. */
uint64_t pk_mem_piece_size(uint64_t memsize, int nr_memslots) {
    uint64_t usable = nr_memslots > SLOT_MEM + 1 ? (uint64_t)(nr_memslots - SLOT_MEM) : 1;
    uint64_t piece = MEM_PIECE_MIN;
    while (piece < memsize && (memsize + piece - 1) / piece > usable) piece <<= 1;
    return piece;
}

/* The KVM slot of the memory file's piece holding off. */
int pk_ensure_slot(struct pk_vm *vm, uint64_t off) {
    if (off >= vm->memsize) return -EINVAL;
    uint64_t piece = off / vm->mem_piece, base = piece * vm->mem_piece, size = vm->mem_piece;
    if (vm->slot_made[piece]) return 0;
    if (base + size > vm->memsize) size = vm->memsize - base;
    struct kvm_userspace_memory_region r = {
        .slot = (uint32_t)(SLOT_MEM + piece), .guest_phys_addr = base, .memory_size = size,
        .userspace_addr = (uint64_t)(vm->mem + base)};
    if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) return -errno;
    vm->slot_made[piece] = 1;
    return 0;
}
