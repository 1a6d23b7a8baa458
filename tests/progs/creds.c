#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <string.h>
static void show(const char *what, int r) {
  uid_t a, b, c; getresuid(&a, &b, &c);
  int fd = open("/etc/shadow", O_RDONLY);
  printf("%-22s -> %2d %-7s ids %u %u %u shadow %s\n", what, r, r ? strerrorname_np(errno) : "", a, b, c, fd >= 0 ? "OPEN" : strerrorname_np(errno));
  if (fd >= 0) close(fd);
}
static void showg(const char *what, int r) {
  gid_t a, b, c; getresgid(&a, &b, &c);
  printf("%-22s -> %2d ids %u %u %u\n", what, r, a, b, c);
}
int main(){
  /* gids first, while still root; then drop the uids step by step. A privilege drop
   * must be final: the saved ids follow Linux's rules exactly. */
  showg("setregid(-1,42)", setregid(-1, 42));
  showg("setregid(-1,0)", setregid(-1, 0));
  showg("setresgid(7,8,9)", setresgid(7, 8, 9));
  showg("setgid(9)", setgid(9));
  showg("setgid(0)", setgid(0));
  show("start", 0);
  show("setreuid(-1,1001)", setreuid(-1, 1001));
  show("setreuid(-1,0)", setreuid(-1, 0));
  show("seteuid(1001)", seteuid(1001));
  show("seteuid(0)", seteuid(0));
  show("setresuid(-1,1001,-1)", setresuid(-1, 1001, -1));
  show("setreuid(1001,-1)", setreuid(1001, -1));
  show("setreuid(-1,0)", setreuid(-1, 0));
  show("setuid(0)", setuid(0));
  show("setuid(1002)", setuid(1002));
  show("setuid(0)", setuid(0));
  show("setreuid(1002,1002)", setreuid(1002, 1002));
  return 0;
}
