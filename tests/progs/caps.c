/* Capabilities as a root program sees them: capget/capset, the uid transitions, keepcaps,
 * ambient and bounding sets, execve, fork and threads, and the checks they govern (chown,
 * open of another uid's 0600 file). Every step runs in a child so each starts as root.
 * Sets print relative to the first permitted set (a container's root may lack some
 * capabilities): "all", "none", "all but 0x..", or the bits. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

typedef unsigned long long u64;
static u64 all;                 /* the permitted set this program started with */
static char dir[] = "/tmp/capsXXXXXX";
static char path[64];
static const char *self;

static const char *rel(u64 v, char *buf) {
    if (v == all) return "all";
    if (v == 0) return "none";
    if (!(v & ~all) && __builtin_popcountll(all & ~v) <= 8)
        sprintf(buf, "all but %#llx", all & ~v);
    else
        sprintf(buf, "%#llx", v);
    return buf;
}

static const char *res(long r) {
    static char buf[32];
    if (r < 0) snprintf(buf, sizeof buf, "-1 %s", strerrorname_np(errno));
    else snprintf(buf, sizeof buf, "%ld", r);
    return buf;
}

static long capget2(pid_t pid, u64 *e, u64 *p, u64 *i) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, pid};
    struct __user_cap_data_struct d[2];
    long r = syscall(SYS_capget, &h, d);
    if (r == 0) {
        *e = d[0].effective | (u64)d[1].effective << 32;
        *p = d[0].permitted | (u64)d[1].permitted << 32;
        *i = d[0].inheritable | (u64)d[1].inheritable << 32;
    }
    return r;
}

static long capset2(pid_t pid, u64 e, u64 p, u64 i) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, pid};
    struct __user_cap_data_struct d[2] = {
        {(uint32_t)e, (uint32_t)p, (uint32_t)i},
        {(uint32_t)(e >> 32), (uint32_t)(p >> 32), (uint32_t)(i >> 32)}};
    return syscall(SYS_capset, &h, d);
}

static void show_status(const char *who, const char *file) {
    FILE *f = fopen(file, "r");
    char line[256], b[64];
    if (!f) { printf("%s: cannot open %s\n", who, file); return; }
    printf("%s: /proc status", who);
    while (fgets(line, sizeof line, f)) {
        u64 v;
        char name[16];
        if (sscanf(line, "Cap%3s:\t%llx", name, &v) == 2) printf(" %s=%s", name, rel(v, b));
        else if (!strncmp(line, "Uid:", 4) || !strncmp(line, "Gid:", 4))
            printf(" %.*s", (int)strcspn(line, "\n"), line);
    }
    printf("\n");
    fclose(f);
}

/* What capget and /proc say about the calling thread. */
static void show(const char *who) {
    u64 e, p, i;
    char b1[64], b2[64], b3[64], file[64];
    long r = capget2(0, &e, &p, &i);
    if (r) { printf("%s: capget %s\n", who, res(r)); return; }
    printf("%s: eff=%s prm=%s inh=%s\n", who, rel(e, b1), rel(p, b2), rel(i, b3));
    snprintf(file, sizeof file, "/proc/self/task/%d/status", gettid());
    show_status(who, file);
}

static void caps_now(u64 *e, u64 *p, u64 *i) { capget2(0, e, p, i); }

static void drop_eff(int cap) {
    u64 e, p, i;
    caps_now(&e, &p, &i);
    long r = capset2(0, e & ~(1ULL << cap), p, i);
    printf("drop effective %d: %s\n", cap, res(r));
}

static void in_child(void (*step)(void)) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) { step(); fflush(stdout); _exit(0); }
    int st;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) printf("child status %#x\n", st);
}

static void step_chown(void) {
    drop_eff(CAP_CHOWN);
    show("no CAP_CHOWN");
    printf("chown to 1000: %s\n", res(chown(path, 1000, 1000)));
    printf("chown to own ids: %s\n", res(chown(path, 0, 0)));
    printf("chmod still allowed: %s\n", res(chmod(path, 0600)));
    u64 e, p, i;
    caps_now(&e, &p, &i);
    printf("re-raise from permitted: %s\n", res(capset2(0, e | 1 << CAP_CHOWN, p, i)));
    printf("chown to 2000: %s\n", res(chown(path, 2000, 2000)));
}

static void step_dac(void) {
    /* path is 0600 and owned by 2000 now. */
    drop_eff(CAP_DAC_OVERRIDE);
    printf("read with CAP_DAC_READ_SEARCH: %s\n", res(open(path, O_RDONLY) >= 0 ? 0 : -1));
    printf("write without CAP_DAC_OVERRIDE: %s\n", res(open(path, O_WRONLY) >= 0 ? 0 : -1));
    drop_eff(CAP_DAC_READ_SEARCH);
    printf("read without either: %s\n", res(open(path, O_RDONLY) >= 0 ? 0 : -1));
    printf("access F_OK (no permission needed): %s\n", res(access(dir, F_OK)));
    show("no DAC caps");
}

static void step_setuid(void) {
    printf("setuid 1000: %s\n", res(setuid(1000)));
    show("uid 1000");
    printf("setuid 0 refused: %s\n", res(setuid(0)));
    printf("capset pid 0 raising: %s\n", res(capset2(0, 1, 1, 0)));
    printf("open 0600 of uid 2000: %s\n", res(open(path, O_RDONLY) >= 0 ? 0 : -1));
}

static void step_saved_root(void) {
    printf("setresuid 1000 1000 0: %s\n", res(setresuid(1000, 1000, 0)));
    show("saved uid 0");
    printf("chown refused: %s\n", res(chown(path, 1000, 1000)));
    printf("seteuid 0: %s\n", res(seteuid(0)));
    show("euid 0 again");
    printf("setreuid -1 1000: %s\n", res(setreuid(-1, 1000)));
    show("euid 1000 via setreuid");
}

static void step_keepcaps(void) {
    printf("get keepcaps: %s\n", res(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)));
    printf("set keepcaps 2: %s\n", res(prctl(PR_SET_KEEPCAPS, 2, 0, 0, 0)));
    printf("set keepcaps 1: %s\n", res(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0)));
    printf("get keepcaps: %s\n", res(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)));
    printf("securebits: %s\n", res(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0)));
    printf("setresuid 1000 1000 1000: %s\n", res(setresuid(1000, 1000, 1000)));
    show("keepcaps uid 1000");
    u64 e, p, i;
    caps_now(&e, &p, &i);
    printf("raise effective from permitted: %s\n", res(capset2(0, p, p, i)));
    show("keepcaps raised");
    printf("chown as uid 1000 with CAP_CHOWN: %s\n", res(chown(path, 3000, 3000)));
    printf("setuid 0 with CAP_SETUID: %s\n", res(setuid(0)));
    show("back to root");
}

static void step_fsuid(void) {
    char own[80];
    snprintf(own, sizeof own, "%s/rootonly", dir);
    int fd = open(own, O_CREAT | O_WRONLY, 0600);
    close(fd);
    printf("setfsuid 1000: %s\n", res(setfsuid(1000)));
    printf("setfsuid query: %s\n", res(setfsuid(-1)));
    show("fsuid 1000");
    printf("open root's 0600 file: %s\n", res(open(own, O_RDONLY) >= 0 ? 0 : -1));
    printf("kill parent: %s\n", res(kill(getppid(), 0)));
    printf("setfsgid 1000: %s\n", res(setfsgid(1000)));
    printf("setfsuid 0: %s\n", res(setfsuid(0)));
    show("fsuid 0 again");
    printf("open root's 0600 file: %s\n", res(open(own, O_RDONLY) >= 0 ? 0 : -1));
    printf("seteuid 1000: %s\n", res(seteuid(1000)));
    printf("setfsuid 0 follows: %s\n", res(setfsuid(0)));
    printf("setfsuid 2000 refused: %s\n", res(setfsuid(2000)));
    printf("setfsuid query: %s\n", res(setfsuid(-1)));
    show("euid 1000 fsuid 0");
    printf("open root's 0600 file as fsuid 0: %s\n", res(open(own, O_RDONLY) >= 0 ? 0 : -1));
    unlink(own);
}

static void step_capset_rules(void) {
    u64 e, p, i;
    caps_now(&e, &p, &i);
    printf("capset parent: %s\n", res(capset2(getppid(), e, p, i)));
    printf("capset own tid: %s\n", res(capset2(gettid(), e, p, i)));
    u64 pe, pp, pi;
    long r = capget2(getppid(), &pe, &pp, &pi);
    char b[64];
    printf("capget parent: %s eff=%s\n", res(r), r ? "-" : rel(pe, b));
    printf("capget no such pid: %s\n", res(capget2(999999, &pe, &pp, &pi)));
    printf("capget negative pid: %s\n", res(capget2(-5, &pe, &pp, &pi)));
    printf("effective not in permitted: %s\n",
           res(capset2(0, e, p & ~(1ULL << CAP_KILL), i)));
    printf("drop CAP_KILL permitted: %s\n",
           res(capset2(0, e & ~(1ULL << CAP_KILL), p & ~(1ULL << CAP_KILL), i)));
    caps_now(&e, &p, &i);
    printf("raise permitted back: %s\n", res(capset2(0, e, p | 1ULL << CAP_KILL, i)));
    printf("inheritable beyond permitted (CAP_SETPCAP held): %s\n",
           res(capset2(0, e, p, i | 1ULL << CAP_KILL)));
    caps_now(&e, &p, &i);
    printf("drop effective CAP_SETPCAP: %s\n",
           res(capset2(0, e & ~(1ULL << CAP_SETPCAP), p, 0)));
    caps_now(&e, &p, &i);
    printf("inheritable beyond permitted: %s\n", res(capset2(0, e, p, 1ULL << CAP_KILL)));
    printf("inheritable within permitted: %s\n", res(capset2(0, e, p, 1ULL << CAP_CHOWN)));
    show("after capset rules");
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_1, 0};
    struct __user_cap_data_struct d[1];
    printf("capget v1: %s\n", res(syscall(SYS_capget, &h, d)));
    printf("v1 effective low word: %s\n", d[0].effective == (uint32_t)e ? "same" : "differs");
    printf("kill parent with CAP_KILL: %s\n", res(kill(getppid(), 0)));
}

static void step_kill(void) {
    printf("setresuid 1000 1000 0: %s\n", res(setresuid(1000, 1000, 0)));
    printf("kill root parent without CAP_KILL: %s\n", res(kill(getppid(), 0)));
}

static void step_bounding_ambient(void) {
    printf("capbset read CAP_SYS_BOOT: %s\n", res(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0)));
    printf("capbset read 200: %s\n", res(prctl(PR_CAPBSET_READ, 200, 0, 0, 0)));
    printf("capbset drop CAP_SYS_BOOT: %s\n", res(prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT, 0, 0, 0)));
    printf("capbset read CAP_SYS_BOOT: %s\n", res(prctl(PR_CAPBSET_READ, CAP_SYS_BOOT, 0, 0, 0)));
    printf("ambient raise without inheritable: %s\n",
           res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0)));
    u64 e, p, i;
    caps_now(&e, &p, &i);
    capset2(0, e, p, 1ULL << CAP_CHOWN | 1ULL << CAP_FOWNER);
    printf("ambient raise: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0)));
    printf("ambient raise fowner: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_FOWNER, 0, 0)));
    printf("ambient is_set: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0)));
    printf("ambient lower fowner: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, CAP_FOWNER, 0, 0)));
    printf("ambient bad op: %s\n", res(prctl(PR_CAP_AMBIENT, 9, CAP_CHOWN, 0, 0)));
    printf("ambient clear_all extra arg: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 1, 0, 0)));
    show("ambient chown");
    /* Dropping it from inheritable drops it from ambient. */
    caps_now(&e, &p, &i);
    capset2(0, e, p, 1ULL << CAP_FOWNER);
    printf("ambient after inheritable drop: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0)));
    capset2(0, e, p, 1ULL << CAP_CHOWN);
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0);
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    printf("setresuid 1000 x3: %s\n", res(setresuid(1000, 1000, 1000)));
    printf("ambient after leaving root: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_CHOWN, 0, 0)));
    printf("ambient raise again: %s\n", res(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_CHOWN, 0, 0)));
    show("before exec as 1000");
    fflush(stdout);
    execl(self, self, "show", "exec as 1000 with ambient CAP_CHOWN", (char *)NULL);
    printf("exec failed: %s\n", res(-1));
}

static void step_root_exec(void) {
    drop_eff(CAP_CHOWN);
    u64 e, p, i;
    caps_now(&e, &p, &i);
    printf("drop permitted CAP_KILL: %s\n", res(capset2(0, e & ~(1ULL << CAP_KILL), p & ~(1ULL << CAP_KILL), i)));
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    show("before root exec");
    fflush(stdout);
    execl(self, self, "show", "exec as root", (char *)NULL);
    printf("exec failed: %s\n", res(-1));
}

static void step_exec_saved_root(void) {
    printf("setresuid 1000 1000 0: %s\n", res(setresuid(1000, 1000, 0)));
    fflush(stdout);
    execl(self, self, "show", "exec with saved uid 0", (char *)NULL);
    printf("exec failed: %s\n", res(-1));
}

static void step_exec_real_root(void) {
    printf("setresuid 0 1000 0: %s\n", res(setresuid(0, 1000, 0)));
    fflush(stdout);
    execl(self, self, "show", "exec with real uid 0, euid 1000", (char *)NULL);
    printf("exec failed: %s\n", res(-1));
}

static void step_fork(void) {
    drop_eff(CAP_CHOWN);
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        show("grandchild");
        printf("grandchild chown: %s\n", res(chown(path, 1000, 1000)));
        fflush(stdout);
        _exit(0);
    }
    waitpid(c, NULL, 0);
}

static pthread_barrier_t dropped, shown;

static void *second_thread(void *arg) {
    pthread_barrier_wait(&dropped);
    show("second thread");
    printf("second thread chown: %s\n", res(chown(path, 1000, 1000)));
    fflush(stdout);
    pthread_barrier_wait(&shown);
    return NULL;
}

static void step_threads(void) {
    pthread_t th;
    pthread_barrier_init(&dropped, NULL, 2);
    pthread_barrier_init(&shown, NULL, 2);
    pthread_create(&th, NULL, second_thread, NULL);
    drop_eff(CAP_CHOWN);
    fflush(stdout);
    pthread_barrier_wait(&dropped);
    pthread_barrier_wait(&shown);
    show("main thread");
    printf("main thread chown: %s\n", res(chown(path, 0, 0)));
    show_status("whole process", "/proc/self/status");
    pthread_join(th, NULL);
}

int main(int argc, char **argv) {
    u64 e, p, i;
    self = argv[0];
    if (argc > 2 && !strcmp(argv[1], "show")) {
        /* After an exec: the sets are relative to the root the test started as. */
        all = strtoull(getenv("CAPS_ALL"), NULL, 16);
        show(argv[2]);
        printf("keepcaps after exec: %s\n", res(prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)));
        return 0;
    }
    caps_now(&e, &p, &i);
    all = p;
    char hex[32];
    snprintf(hex, sizeof hex, "%llx", all);
    setenv("CAPS_ALL", hex, 1);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    show("start");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    chmod(dir, 0755);
    snprintf(path, sizeof path, "%s/file", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);
    in_child(step_chown);
    in_child(step_dac);
    in_child(step_setuid);
    in_child(step_saved_root);
    in_child(step_keepcaps);
    in_child(step_fsuid);
    in_child(step_capset_rules);
    in_child(step_kill);
    in_child(step_bounding_ambient);
    in_child(step_root_exec);
    in_child(step_exec_saved_root);
    in_child(step_exec_real_root);
    in_child(step_fork);
    in_child(step_threads);
    show("parent at the end");
    unlink(path);
    rmdir(dir);
    return 0;
}
