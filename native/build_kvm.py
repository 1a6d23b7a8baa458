"""cffi build script for pysentry.native._kvm (run at install time by setup.py)."""
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef("""
struct user_regs_struct {
    unsigned long long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx,
        rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss, fs_base, gs_base, ds, es, fs, gs;
};
struct pk_event {
    int kind;
    int vector;
    uint64_t error;
    uint64_t cr2;
    int exit_reason;
    uint64_t detail;
};
struct pk_vm;
struct pk_as;
struct pk_vcpu;
struct pk_vm *pk_vm_create(int memfd, uint64_t memsize, int *err, char *msg, int msglen);
void pk_vm_destroy(struct pk_vm *vm);
void pk_vm_destroy_aside(struct pk_vm *vm);
struct pk_vm_creation;
struct pk_vm_creation *pk_vm_create_start(int memfd, uint64_t memsize);
struct pk_vm *pk_vm_create_finish(struct pk_vm_creation *c, int *err, char *msg, int msglen);
int pk_vm_event_fd(struct pk_vm *vm);
uint64_t pk_vm_xcr0(struct pk_vm *vm);
int pk_vm_xstate_size(struct pk_vm *vm);
int pk_vm_collect(struct pk_vm *vm, int *ids, int max);
int pk_vm_spin(struct pk_vm *vm, int usec);
void pk_vm_wake(struct pk_vm *vm);
void pk_vm_set_spin(struct pk_vm *vm, int vcpu_usec, int backoff);
void pk_vm_set_site_probe(struct pk_vm *vm, int every);
void pk_vcpu_mute_site(struct pk_vcpu *v, uint64_t rip);
uint64_t pk_vm_stat(struct pk_vm *vm, int which);
struct pk_as *pk_as_create(struct pk_vm *vm);
int pk_as_map(struct pk_as *as, uint64_t va, uint64_t len, uint64_t off, int prot);
int pk_as_unmap(struct pk_as *as, uint64_t va, uint64_t len);
int pk_as_protect(struct pk_as *as, uint64_t va, uint64_t len, int prot);
void pk_as_release(struct pk_as *as);
uint64_t pk_as_lookup(struct pk_as *as, uint64_t va);
struct pk_vcpu *pk_vcpu_get(struct pk_vm *vm, int *err);
void pk_vcpu_put(struct pk_vcpu *v);
int pk_vcpu_id(struct pk_vcpu *v);
struct pk_vcpu *pk_vcpu_by_id(struct pk_vm *vm, int id);
struct pk_event *pk_vcpu_event(struct pk_vcpu *v);
int pk_vcpu_resume(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as);
void pk_vcpu_kick(struct pk_vcpu *v);
int pk_vcpu_prepare(struct pk_vcpu *v, struct user_regs_struct *regs, struct pk_as *as);
int pk_vcpu_run_here(struct pk_vcpu *v, int slice_usec);
int pk_vcpu_choose_direct(struct pk_vcpu *v);
int pk_vcpu_hand_to_thread(struct pk_vcpu *v);
void pk_vcpu_cancel_direct(struct pk_vcpu *v);
void pk_vcpu_set_ids(struct pk_vcpu *v, int serve, const int64_t *ids);
uint64_t pk_vcpu_served(struct pk_vcpu *v);
uint64_t pk_vcpu_cpu_ns(struct pk_vcpu *v);
int pk_vcpu_get_xsave(struct pk_vcpu *v, void *buf4096);
int pk_vcpu_set_xsave(struct pk_vcpu *v, const void *buf4096);
#define PK_USER_TOP ...
#define PK_MAX_VCPUS ...
#define PK_EV_SYSCALL ...
#define PK_EV_FAULT ...
#define PK_EV_INTERRUPT ...
#define PK_EV_GONE ...
#define PK_ID_PID ...
#define PK_ID_TID ...
#define PK_ID_PPID ...
#define PK_ID_UID ...
#define PK_ID_EUID ...
#define PK_ID_GID ...
#define PK_ID_EGID ...
#define PK_ID_PGRP ...
#define PK_ID_SID ...
#define PK_ID_COUNT ...
#define PK_SYSCALL_WINDOW ...
#define PK_SYSCALL_WINDOW_NR ...
#define PK_VIA_WINDOW ...
#define PK_VIA_PROBE ...
""")
ffibuilder.set_source(
    "pysentry.native._kvm",
    '#include "kvm_core.h"',
    # relative paths: setuptools rejects absolute ones
    sources=["native/kvm_vm.c", "native/kvm_mmu.c", "native/kvm_guest.c"],
    include_dirs=["native"],
    extra_compile_args=["-O2", "-Wall", "-std=gnu11"],
    libraries=["pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
