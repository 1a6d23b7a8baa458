#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <setjmp.h>
static int counter; static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
void *work(void *a){ for(int i=0;i<1000;i++){pthread_mutex_lock(&mu);counter++;pthread_mutex_unlock(&mu);} return a; }
static volatile int got; static void h(int s){ got = s; }
static sigjmp_buf jb; static void *faddr;
static void segv(int s, siginfo_t *si, void *uc){ faddr = si->si_addr; siglongjmp(jb,1); }
int main(){
  pthread_t t[4]; for(int i=0;i<4;i++) pthread_create(&t[i],0,work,0);
  for(int i=0;i<4;i++) pthread_join(t[i],0);
  printf("counter %d\n", counter);
  signal(SIGUSR1, h); kill(getpid(), SIGUSR1); printf("got %d\n", got);
  struct sigaction sa; memset(&sa,0,sizeof sa); sa.sa_sigaction=segv; sa.sa_flags=SA_SIGINFO; sigaction(SIGSEGV,&sa,0);
  if(!sigsetjmp(jb,1)){ *(volatile int*)0x1234 = 1; }
  printf("fault at %p\n", faddr);
  double d = 1.5; for (int i=0;i<10;i++) d*=1.1; printf("fp %.6f\n", d);
  pid_t p = fork(); if(!p){ char *m = malloc(1<<20); memset(m, 7, 1<<20); _exit(m[5]); }
  int st; waitpid(p,&st,0); printf("child %d\n", WEXITSTATUS(st));
  p = fork(); if(!p){ raise(SIGTERM); _exit(0);} waitpid(p,&st,0); printf("sig %d\n", WTERMSIG(st));
  return 3;
}
