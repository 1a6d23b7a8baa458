/* Credentials and capabilities. Changes happen in children, so the parent stays root. */
#include "cov.h"
#include <linux/capability.h>
#include <grp.h>

int main(void) {
    setup("creds");
    R(getuid, "", SC(getuid));
    R(geteuid, "", SC(geteuid));
    R(getgid, "", SC(getgid));
    R(getegid, "", SC(getegid));
    uid_t r, e, s;
    R(getresuid, "call", SC(getresuid, &r, &e, &s));
    SAY(getresuid, "values", "%d %d %d", r, e, s);
    R(getresuid, "bad pointer", SC(getresuid, (void *)8, &e, &s));
    gid_t gr, ge, gs;
    R(getresgid, "call", SC(getresgid, &gr, &ge, &gs));
    SAY(getresgid, "values", "%d %d %d", gr, ge, gs);
    gid_t groups[64];
    long n = SC(getgroups, 64, groups);
    SAY(getgroups, "count non-negative", "%s", YES(n >= 0));
    R(getgroups, "negative size", SC(getgroups, -1, groups));

    pid_t c = fork();
    if (c == 0) {
        gid_t two[2] = {10, 20};
        R(setgroups, "two groups", SC(setgroups, 2, two));
        R(getgroups, "count after setgroups", SC(getgroups, 0, NULL));
        n = SC(getgroups, 64, groups);
        SAY(getgroups, "groups", "%d %d", n > 0 ? groups[0] : -1, n > 1 ? groups[1] : -1);
        R(getgroups, "size too small", SC(getgroups, 1, groups));
        R(setgroups, "too many", SC(setgroups, 70000, two));
        R(setresgid, "100 200 300", SC(setresgid, 100, 200, 300));
        SC(getresgid, &gr, &ge, &gs);
        SAY(setresgid, "values", "%d %d %d", gr, ge, gs);
        R(setregid, "-1 150", SC(setregid, -1, 150));
        R(getegid, "after setregid", SC(getegid));
        R(setgid, "50", SC(setgid, 50));
        SC(getresgid, &gr, &ge, &gs);
        SAY(setgid, "values as root", "%d %d %d", gr, ge, gs);
        R(setfsgid, "returns old", SC(setfsgid, 77));
        R(setfsgid, "query", SC(setfsgid, -1));
        R(setresuid, "1000 1001 0", SC(setresuid, 1000, 1001, 0));
        SC(getresuid, &r, &e, &s);
        SAY(setresuid, "values", "%d %d %d", r, e, s);
        R(setfsuid, "follows euid", SC(setfsuid, -1));
        R(setreuid, "-1 0 (saved is 0)", SC(setreuid, -1, 0));
        R(geteuid, "after setreuid", SC(geteuid));
        R(setuid, "2000 as root", SC(setuid, 2000));
        SC(getresuid, &r, &e, &s);
        SAY(setuid, "values", "%d %d %d", r, e, s);
        R(setuid, "back to 0 refused", SC(setuid, 0));
        R(setresuid, "to 0 refused", SC(setresuid, 0, 0, 0));
        R(setgroups, "as non-root", SC(setgroups, 0, NULL));
        R(setgid, "to 0 refused", SC(setgid, 0));
        R(open, "root-only file as uid 2000", SC(open, "/etc/shadow", O_RDONLY));
        _exit(0);
    }
    SAY(setuid, "child", "%s", ended(c));

    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    R(capget, "v3", SC(capget, &hdr, data));
    SAY(capget, "has CAP_SETUID effective", "%s", YES(data[0].effective & (1u << CAP_SETUID)));
    struct __user_cap_header_struct bad = {0x12345678, 0};
    R(capget, "bad version", SC(capget, &bad, data));
    SAY(capget, "bad version rewritten", "%#x", bad.version);
    R(capget, "version query (NULL data)", SC(capget, &hdr, NULL));
    c = fork();
    if (c == 0) {
        SC(capget, &hdr, data);
        data[0].effective &= ~(1u << CAP_CHOWN);
        R(capset, "drop CAP_CHOWN effective", SC(capset, &hdr, data));
        SC(capget, &hdr, data);
        SAY(capset, "CAP_CHOWN effective now", "%s", YES(data[0].effective & (1u << CAP_CHOWN)));
        data[0].effective |= 1u << CAP_CHOWN;
        R(capset, "re-raise from permitted", SC(capset, &hdr, data));
        data[0].permitted = 0;
        data[0].effective = 1;
        R(capset, "effective not in permitted", SC(capset, &hdr, data));
        _exit(0);
    }
    SAY(capset, "child", "%s", ended(c));
    return 0;
}
