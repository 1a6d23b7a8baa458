/* Extended attributes (user namespace). */
#include "cov.h"
#include <sys/xattr.h>

static void names(const char *sys, const char *what, long n, const char *buf) {
    if (n < 0) { printf("%s %s: -1 %s\n", sys, what, ename(errno)); return; }
    /* The order of names is the filesystem's; print them sorted. */
    const char *list[16];
    int k = 0;
    for (long i = 0; i < n && k < 16; i += strlen(buf + i) + 1) list[k++] = buf + i;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++)
            if (strcmp(list[i], list[j]) > 0) { const char *t = list[i]; list[i] = list[j]; list[j] = t; }
    printf("%s %s: %ld bytes:", sys, what, n);
    for (int i = 0; i < k; i++) printf(" %s", list[i]);
    printf("\n");
}

int main(void) {
    setup("xattr");
    put("f", "x");
    symlink("f", "lnk");
    int fd = open("f", O_RDWR);
    char buf[256];
    R(setxattr, "create", SC(setxattr, "f", "user.one", "111", 3, XATTR_CREATE));
    R(setxattr, "create existing", SC(setxattr, "f", "user.one", "1", 1, XATTR_CREATE));
    R(setxattr, "replace missing", SC(setxattr, "f", "user.zzz", "1", 1, XATTR_REPLACE));
    R(setxattr, "replace", SC(setxattr, "f", "user.one", "1111", 4, XATTR_REPLACE));
    R(setxattr, "unknown namespace", SC(setxattr, "f", "bogus.x", "1", 1, 0));
    R(setxattr, "bad flags", SC(setxattr, "f", "user.x", "1", 1, 4));
    R(setxattr, "empty name", SC(setxattr, "f", "", "1", 1, 0));
    R(setxattr, "missing file", SC(setxattr, "nope", "user.x", "1", 1, 0));
    R(lsetxattr, "on a symlink (user.* refused)", SC(lsetxattr, "lnk", "user.l", "1", 1, 0));
    R(fsetxattr, "via fd", SC(fsetxattr, fd, "user.two", "22", 2, 0));
    R(fsetxattr, "bad fd", SC(fsetxattr, 77, "user.two", "22", 2, 0));
    long n = R(getxattr, "value size", SC(getxattr, "f", "user.one", buf, sizeof buf));
    SAY(getxattr, "value", "%.*s", (int)(n > 0 ? n : 0), buf);
    R(getxattr, "size query", SC(getxattr, "f", "user.one", NULL, 0));
    R(getxattr, "buffer too small", SC(getxattr, "f", "user.one", buf, 2));
    R(getxattr, "missing attribute", SC(getxattr, "f", "user.none", buf, sizeof buf));
    R(lgetxattr, "through symlink name", SC(lgetxattr, "lnk", "user.one", buf, sizeof buf));
    R(lgetxattr, "file", SC(lgetxattr, "f", "user.two", buf, sizeof buf));
    R(fgetxattr, "via fd", SC(fgetxattr, fd, "user.two", buf, sizeof buf));
    R(fgetxattr, "bad fd", SC(fgetxattr, 77, "user.two", buf, sizeof buf));
    names("listxattr", "file", SC(listxattr, "f", buf, sizeof buf), buf);
    R(listxattr, "size query", SC(listxattr, "f", NULL, 0));
    R(listxattr, "buffer too small", SC(listxattr, "f", buf, 3));
    names("llistxattr", "symlink", SC(llistxattr, "lnk", buf, sizeof buf), buf);
    names("flistxattr", "fd", SC(flistxattr, fd, buf, sizeof buf), buf);
    R(removexattr, "existing", SC(removexattr, "f", "user.one"));
    R(removexattr, "missing", SC(removexattr, "f", "user.one"));
    R(lremovexattr, "on symlink", SC(lremovexattr, "lnk", "user.two"));
    R(fremovexattr, "via fd", SC(fremovexattr, fd, "user.two"));
    R(fremovexattr, "missing", SC(fremovexattr, fd, "user.two"));
    names("listxattr", "after removal", SC(listxattr, "f", buf, sizeof buf), buf);
    return 0;
}
