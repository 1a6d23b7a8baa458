/* Copies out of memory that may vanish under the copy: a host file mapped by the sentry,
 * which a process outside the sandbox may truncate at any moment. Touching a page past
 * the new end of the file raises SIGBUS, which would kill the sentry. sc_copy() copies
 * with a SIGBUS handler armed for its own thread: a fault inside it ends the copy with
 * the count done so far (a short read, as a read(2) racing a truncate gives), and a
 * SIGBUS anywhere else goes to whatever handled it before (by default: death, as before).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include "safecopy.h"

/* Set while this thread is inside sc_copy. Volatile: the compiler sees the memcpy as a
 * builtin that cannot read it, and would otherwise drop the store before the copy. */
static __thread sigjmp_buf *volatile copy_env;
static struct sigaction previous;
static int installed;

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
    sigjmp_buf *env = copy_env;
    if (env) {
        copy_env = NULL;
        siglongjmp(*env, 1);
    }
    /* Not a fault of ours: hand it to the previous disposition and let the faulting
     * instruction run again under it. */
    sigaction(SIGBUS, &previous, NULL);
    (void)sig; (void)si; (void)uc;
}

int sc_install(void) {
    if (installed) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;   /* never left blocked by the longjmp */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &previous) < 0) return -errno;
    installed = 1;
    return 0;
}

/* Copy in large pieces; after a fault, from where it stopped page by page (aligned on
 * the source's pages), so that the count covers every byte that could be copied. */
#define PIECE (64 * 1024)
#define PAGE 4096L

long sc_copy(void *dst, const void *src, long n) {
    sigjmp_buf env;
    volatile long done = 0;
    volatile int faulted = 0;
    if (sigsetjmp(env, 0)) {
        if (faulted) return done;            /* the second fault: this page is gone */
        faulted = 1;
    }
    copy_env = &env;
    while (done < n) {
        long k;
        if (faulted)
            k = PAGE - (long)(((unsigned long)src + (unsigned long)done) & (PAGE - 1));
        else
            k = PIECE;
        if (k > n - done) k = n - done;
        memcpy((char *)dst + done, (const char *)src + done, (size_t)k);
        done += k;
    }
    copy_env = NULL;
    return done;
}

/* A read-only shared mapping of `length` bytes of fd (0 on failure, errno in *err). */
unsigned long sc_map(int fd, unsigned long length, int *err) {
    void *p = mmap(NULL, length, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *err = errno;
        return 0;
    }
    return (unsigned long)p;
}

int sc_unmap(unsigned long addr, unsigned long length) {
    return munmap((void *)addr, length) < 0 ? -errno : 0;
}
