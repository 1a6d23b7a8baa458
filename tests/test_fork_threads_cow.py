"""fork while another thread of the parent keeps storing: no store may be lost.

The sentry copies some pages at fork time (the stack page, recently copied pages) instead
of waiting for their COW faults. A copy taken before the parent's pages are write-protected
would miss the stores other threads make in between: the thread would read back an older
value than its own last store."""
from conftest import assert_same, compile_c

SRC = r"""
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile long *page;
static volatile int stop;
static long lost;
static void *store_and_check(void *x) {
    long mine = 0;
    while (!stop) {
        page[0] = ++mine;
        if (page[0] != mine) { lost++; mine = page[0]; }
    }
    return 0;
}
int main(void) {
    page = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    pthread_t th;
    pthread_create(&th, 0, store_and_check, 0);
    for (int i = 0; i < 200; i++) {
        /* a store by this thread too, so the page is among those copied at the next fork */
        page[1] = i;
        pid_t c = fork();
        if (c == 0) _exit(page[1] == i ? 0 : 1);
        int st;
        waitpid(c, &st, 0);
        if (st) printf("child %d saw the wrong value\n", i);
    }
    stop = 1;
    pthread_join(th, 0);
    printf("stores lost: %ld\n", lost);
    return 0;
}
"""


def test_fork_keeps_other_threads_stores():
    assert_same([compile_c(SRC, extra=("-pthread",))])
