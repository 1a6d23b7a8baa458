/* The legacy vsyscall page (Linux's default vsyscall=xonly): its three entry points
 * work and agree with the syscalls; a call elsewhere in the page, a bad pointer, or a
 * read of the page is a SIGSEGV, each with Linux's si_code and address. */
#define _GNU_SOURCE
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VSYS 0xffffffffff600000UL
typedef long (*gtod_fn)(struct timeval *, struct timezone *);
typedef long (*time_fn)(long *);
typedef long (*getcpu_fn)(unsigned *, unsigned *, void *);

static sigjmp_buf back;
static volatile int got_sig, got_code;
static volatile unsigned long got_addr;

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    got_sig = sig;
    got_code = si->si_code;
    got_addr = (unsigned long)si->si_addr;
    siglongjmp(back, 1);
}

static void expect_segv(const char *what, void (*fn)(void)) {
    got_sig = got_code = 0;
    got_addr = 0;
    if (sigsetjmp(back, 1) == 0) {
        fn();
        printf("%s: returned\n", what);
    } else {
        printf("%s: signal %d code %d addr %#lx\n", what, got_sig, got_code, got_addr);
    }
}

static void call_misaligned(void) { ((time_fn)(VSYS + 0x100))(0); }
static void gtod_past_user_space(void) { ((gtod_fn)VSYS)((struct timeval *)(0x7ffffffff000UL - 8), 0); }
static void gtod_kernel_pointer(void) { ((gtod_fn)VSYS)((struct timeval *)0xffff800000001000UL, 0); }
static void time_kernel_pointer(void) { ((time_fn)(VSYS + 0x400))((long *)0x800000000000UL); }
static void gtod_unmapped(void) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p, 4096);
    ((gtod_fn)VSYS)(p, 0);
}
static void read_page(void) { printf("%d\n", *(volatile unsigned char *)VSYS); }

int main(void) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);     /* so getcpu has one answer */

    struct timeval tv, tv_sys;
    struct timezone tz;
    long r = ((gtod_fn)VSYS)(&tv, &tz);
    syscall(SYS_gettimeofday, &tv_sys, NULL);
    printf("gettimeofday: %ld, within a second of the syscall: %d\n", r,
           tv_sys.tv_sec - tv.tv_sec <= 1 && tv_sys.tv_sec >= tv.tv_sec);
    long tloc = 0;
    long t = ((time_fn)(VSYS + 0x400))(&tloc);
    long t_sys = syscall(SYS_time, NULL);
    printf("time: stored %d, within a second of the syscall: %d\n", tloc == t,
           t_sys - t <= 1 && t_sys >= t);
    printf("time(NULL) > 0: %d\n", ((time_fn)(VSYS + 0x400))(NULL) > 0);
    unsigned cpu = 99, node = 99, cpu_sys = 98, node_sys = 98;
    r = ((getcpu_fn)(VSYS + 0x800))(&cpu, &node, NULL);
    syscall(SYS_getcpu, &cpu_sys, &node_sys, NULL);
    printf("getcpu: %ld, same as the syscall: %d\n", r, cpu == cpu_sys && node == node_sys);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    expect_segv("call inside the page, not an entry", call_misaligned);
    expect_segv("gettimeofday past user space", gtod_past_user_space);
    expect_segv("gettimeofday into kernel space", gtod_kernel_pointer);
    expect_segv("time into the first non-user address", time_kernel_pointer);
    expect_segv("gettimeofday into an unmapped page", gtod_unmapped);
    expect_segv("read of the page", read_page);
    return 0;
}
