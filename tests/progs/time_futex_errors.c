/* Error paths Linux checks in a fixed order: settimeofday validates before it refuses,
 * clock_nanosleep has no sleep on a thread CPU clock, the futex wake family checks the
 * alignment and mapping of its words. Prints each result as errno names. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static void show(const char *what, long r) {
    if (r < 0) printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else printf("%s: %ld\n", what, r);
}

int main(void) {
    struct timeval bad_usec = {0, 2000000}, neg_usec = {0, -1}, neg_sec = {-5, 0};
    show("settimeofday usec 2000000", syscall(SYS_settimeofday, &bad_usec, NULL));
    show("settimeofday usec -1", syscall(SYS_settimeofday, &neg_usec, NULL));
    show("settimeofday sec -5", syscall(SYS_settimeofday, &neg_sec, NULL));
    show("settimeofday bad tv pointer", syscall(SYS_settimeofday, (void *)8, NULL));
    show("settimeofday bad tz pointer", syscall(SYS_settimeofday, NULL, (void *)8));
    /* Valid values are left out: natively, as root, they would set the host's clock. */

    struct timespec d = {0, 1000};
    show("clock_nanosleep THREAD_CPUTIME_ID", syscall(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &d, NULL));
    show("clock_nanosleep bad clock", syscall(SYS_clock_nanosleep, 99, 0, &d, NULL));

    unsigned int words[4] = {0};
    char *w = (char *)words;
    show("FUTEX_WAKE unaligned", syscall(SYS_futex, w + 1, FUTEX_WAKE, 1, NULL, NULL, 0));
    show("FUTEX_WAKE_PRIVATE unaligned", syscall(SYS_futex, w + 2, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0));
    show("FUTEX_WAKE_BITSET bitset 0", syscall(SYS_futex, w, FUTEX_WAKE_BITSET, 1, NULL, NULL, 0));
    show("FUTEX_REQUEUE unaligned target", syscall(SYS_futex, w, FUTEX_REQUEUE, 1, 1, w + 1, 0));
    show("FUTEX_WAKE aligned", syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0));
    char *gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    munmap(gone, 4096);
    show("FUTEX_WAKE shared, unmapped", syscall(SYS_futex, gone, FUTEX_WAKE, 1, NULL, NULL, 0));
    return 0;
}
