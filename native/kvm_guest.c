/* The guest side of the KVM platform: the ring-0 stub (assembled by gcc) and the
 * descriptor tables it runs with.
 *
 * The stub never touches application memory and keeps no state between exits: every
 * trap leaves the guest at once through an `out`, and every entry into the application
 * is one `iretq` from a frame the host wrote on the vCPU's ring-0 stack.
 *
 *  - LSTAR points at `out PK_PORT_SYSCALL`. On hardware-virtualized hosts a ring-3
 *    `syscall` lands there in ring 0. On PVM (software virtualization, this project's
 *    test machine) a native guest's `syscall` jumps to LSTAR without changing privilege,
 *    so the fetch of that supervisor page faults: the host recognises a #PF whose rip and
 *    cr2 are both LSTAR as the syscall (rcx and r11 already hold rip and rflags).
 *  - Each of the 32 exception vectors pushes a uniform frame (error code, vector, rax, cr2
 *    on top of the CPU's iret frame) and exits through PK_PORT_EXC.
 *  - The maintenance entry applies a batch of page-table writes (see kvm_mmu.c).
 */
#include <string.h>
#include "kvm_internal.h"

extern const char pk_stub_start[], pk_stub_end[], pk_stub_lstar[], pk_stub_iret[],
    pk_stub_mnt[], pk_stub_vec[];
__asm__(
    ".pushsection .rodata\n"
    ".globl pk_stub_start, pk_stub_end, pk_stub_lstar, pk_stub_iret, pk_stub_mnt, pk_stub_vec\n"
    ".balign 4096\n"
    "pk_stub_start:\n"
    "pk_stub_lstar:\n"
    "  out %al, $0x10\n"
    "  hlt\n"
    ".balign 16\n"
    "pk_stub_iret:\n"
    "  iretq\n"
    /* Maintenance: rbx = cr3 to apply the batch under, rdx = cr3 to finish with,
     * rsi = batch, rcx = entries {va, value, size}. Loading cr3 before and after makes
     * KVM's shadow MMU sync any page-table pages the writes left unsynced. */
    ".balign 16\n"
    "pk_stub_mnt:\n"
    "  mov %rbx, %cr3\n"
    "1:\n"
    "  test %rcx, %rcx\n"
    "  jz 3f\n"
    "  mov (%rsi), %rdi\n"
    "  mov 8(%rsi), %rax\n"
    "  cmpq $2, 16(%rsi)\n"
    "  je 2f\n"
    "  mov %rax, (%rdi)\n"
    "  jmp 4f\n"
    "2:\n"
    "  movw %ax, (%rdi)\n"
    "4:\n"
    "  add $24, %rsi\n"
    "  dec %rcx\n"
    "  jmp 1b\n"
    "3:\n"
    "  mov %rbx, %cr3\n"
    "  mov %rdx, %cr3\n"
    "  out %al, $0x12\n"
    "  hlt\n"
    ".balign 16\n"
    "pk_stub_vec:\n"
    ".irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
    ".balign 16\n"
    ".if (\\n==8)||(\\n==10)||(\\n==11)||(\\n==12)||(\\n==13)||(\\n==14)||(\\n==17)||(\\n==21)||(\\n==29)||(\\n==30)\n"
    "  nop\n  nop\n"
    ".else\n"
    "  pushq $0\n"
    ".endif\n"
    "  pushq $\\n\n"
    "  jmp pk_stub_common\n"
    ".endr\n"
    "pk_stub_common:\n"
    "  push %rax\n"
    "  mov %cr2, %rax\n"
    "  push %rax\n"
    "  out %al, $0x11\n"
    "  hlt\n"
    "pk_stub_end:\n"
    ".popsection\n");

uint64_t pk_stub_addr(int which) {
    const char *p = which == 0 ? pk_stub_lstar : which == 1 ? pk_stub_iret
                  : which == 2 ? pk_stub_mnt : pk_stub_vec;
    return PK_KBASE + SYS_CODE + (uint64_t)(p - pk_stub_start);
}

static uint64_t code_desc(int dpl) {
    return (1ULL << 47) | (1ULL << 44) | ((uint64_t)dpl << 45) | (0xAULL << 40) | (1ULL << 53)
         | (1ULL << 55) | (0xFULL << 48) | 0xFFFF;
}
static uint64_t data_desc(int dpl) {
    return (1ULL << 47) | (1ULL << 44) | ((uint64_t)dpl << 45) | (0x2ULL << 40) | (1ULL << 54)
         | (1ULL << 55) | (0xFULL << 48) | 0xFFFF;
}

/* Stub code, IDT, and the kernel-half page tables shared by every address space. */
void pk_guest_build_system(struct pk_vm *vm) {
    uint8_t *s = vm->sys;
    memcpy(s + SYS_CODE, pk_stub_start, (size_t)(pk_stub_end - pk_stub_start));
    uint64_t *idt = (uint64_t *)(s + SYS_IDT);
    for (int v = 0; v < 32; v++) {
        uint64_t h = pk_stub_addr(3) + 16 * (uint64_t)v;
        int dpl = (v == 3 || v == 4) ? 3 : 0;       /* int3 and into from ring 3, as Linux */
        idt[2 * v] = (h & 0xffff) | ((uint64_t)SEL_KCODE << 16)
                   | ((uint64_t)(0x8e | (dpl << 5)) << 40) | (((h >> 16) & 0xffff) << 48);
        idt[2 * v + 1] = h >> 32;
    }
    uint64_t *pdpt = (uint64_t *)(s + SYS_KPDPT);
    pdpt[0] = (PK_SYS_GPA + SYS_KPD_SYS) | PTE_P | PTE_W | PTE_A;
    pdpt[1] = (PK_SYS_GPA + SYS_KPD_PT) | PTE_P | PTE_W | PTE_A;
    uint64_t *pd = (uint64_t *)(s + SYS_KPD_SYS);
    for (uint64_t i = 0; i < PK_SYS_SIZE >> 21; i++)   /* 2 MiB pages; first one executable */
        pd[i] = (PK_SYS_GPA + (i << 21)) | PTE_P | PTE_W | PTE_A | PTE_D | PTE_PS | (i ? PTE_NX : 0);
    uint64_t *pdt = (uint64_t *)(s + SYS_KPD_PT);
    for (uint64_t i = 0; i < PK_PT_SIZE >> 21; i++)
        pdt[i] = (PK_PT_GPA + (i << 21)) | PTE_P | PTE_W | PTE_A | PTE_D | PTE_PS | PTE_NX;
    /* The syscall window, the only user page of the kernel half: PML4 entry 511 carries U in
     * every address space (kvm_mmu.c), this PDPT entry and the 2 MiB leaf carry it; every
     * other entry below stays supervisor-only. Read-only and NX: rewritten sites load from it. */
    pdpt[(PK_WINDOW_VA >> 30) & 511] = (PK_SYS_GPA + SYS_KPD_WINDOW) | PTE_P | PTE_U | PTE_A;
    ((uint64_t *)(s + SYS_KPD_WINDOW))[(PK_WINDOW_VA >> 21) & 511] =
        PK_WINDOW_GPA | PTE_P | PTE_U | PTE_A | PTE_PS | PTE_NX;
    ((uint64_t *)(s + SYS_IDLE))[511] = (PK_SYS_GPA + SYS_KPDPT) | PTE_P | PTE_W | PTE_A;
}

/* The vCPU's own GDT (its TSS descriptor) and TSS (its ring-0 stack). */
void pk_guest_build_vcpu(struct pk_vm *vm, struct pk_vcpu *v) {
    uint64_t off = SYS_VCPUS + (uint64_t)v->id * VCPU_AREA;
    v->area = vm->sys + off;
    memset(v->area, 0, VCPU_AREA);
    uint64_t *gdt = (uint64_t *)v->area;
    gdt[SEL_KCODE >> 3] = code_desc(0);
    gdt[SEL_KDATA >> 3] = data_desc(0);
    gdt[SEL_UDATA >> 3] = data_desc(3);
    gdt[SEL_UCODE >> 3] = code_desc(3);
    uint64_t tss = PK_KBASE + off + TSS_OFF;
    gdt[SEL_TSS >> 3] = 103 | ((tss & 0xFFFFFF) << 16) | (0x9ULL << 40) | (1ULL << 47)
                      | (((tss >> 24) & 0xff) << 56);
    gdt[(SEL_TSS >> 3) + 1] = tss >> 32;
    uint8_t *t = v->area + TSS_OFF;
    uint64_t rsp0 = PK_KBASE + off + VCPU_AREA;     /* top of the stack page */
    memcpy(t + 4, &rsp0, 8);
    uint16_t iomap = 104;                            /* no I/O bitmap: ring 3 has no ports */
    memcpy(t + 102, &iomap, 2);
}

void pk_guest_sregs0(struct pk_vm *vm, struct pk_vcpu *v, struct kvm_sregs *s) {
    (void)vm;
    uint64_t off = SYS_VCPUS + (uint64_t)v->id * VCPU_AREA;
    struct kvm_segment cs = {.base = 0, .limit = 0xffffffff, .selector = SEL_KCODE, .type = 11,
                             .present = 1, .dpl = 0, .s = 1, .l = 1, .g = 1};
    struct kvm_segment ds = {.base = 0, .limit = 0xffffffff, .selector = SEL_KDATA, .type = 3,
                             .present = 1, .dpl = 0, .db = 1, .s = 1, .g = 1};
    struct kvm_segment tr = {.base = PK_KBASE + off + TSS_OFF, .limit = 103, .selector = SEL_TSS,
                             .type = 11, .present = 1};
    s->cs = cs;
    s->ss = ds;
    s->ds = s->es = s->fs = s->gs = ds;
    s->ds.selector = s->es.selector = s->fs.selector = s->gs.selector = 0;
    s->tr = tr;
    memset(&s->ldt, 0, sizeof s->ldt);
    s->ldt.unusable = 1;
    s->gdt.base = PK_KBASE + off;
    s->gdt.limit = 10 * 8 - 1;
    s->idt.base = PK_KBASE + SYS_IDT;
    s->idt.limit = 32 * 16 - 1;
    s->cr3 = PK_SYS_GPA + SYS_IDLE;
    s->cr0 = 0x80050033;                    /* PG AM WP NE ET MP PE */
    s->cr4 = 0x20 | 0x200 | 0x400 | 0x40000 | ((vm->xcr0 & (1 << 9)) ? 0x400000 : 0);
    s->efer = 0x1 | 0x100 | 0x400 | 0x800;  /* SCE LME LMA NXE */
    memset(s->interrupt_bitmap, 0, sizeof s->interrupt_bitmap);
}
