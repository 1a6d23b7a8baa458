"""Syscall families for the coverage report: a name's family decides where it is counted.

Families follow the areas a user cares about, not the kernel's source layout. A syscall not
listed here is counted under "other".
"""
FAMILIES = {
    "file I/O": """read write open close lseek pread64 pwrite64 readv writev preadv pwritev
        preadv2 pwritev2 dup dup2 dup3 fcntl flock fsync fdatasync sync syncfs truncate
        ftruncate fallocate fadvise64 sendfile close_range creat openat openat2 ioctl
        copy_file_range splice tee vmsplice sync_file_range readahead name_to_handle_at
        open_by_handle_at io_setup io_destroy io_getevents io_submit io_cancel io_pgetevents
        io_uring_setup io_uring_enter io_uring_register""",
    "filesystem": """stat fstat lstat newfstatat statx access faccessat faccessat2 mkdir mkdirat
        rmdir rename renameat renameat2 link linkat unlink unlinkat symlink symlinkat readlink
        readlinkat chmod fchmod fchmodat chown fchown lchown fchownat umask utime utimes
        futimesat utimensat mknod mknodat statfs fstatfs getdents getdents64 getcwd chdir
        fchdir chroot pivot_root mount umount2 setxattr lsetxattr fsetxattr getxattr
        lgetxattr fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr
        fremovexattr inotify_init inotify_init1 inotify_add_watch inotify_rm_watch
        fanotify_init fanotify_mark ustat sysfs quotactl quotactl_fd open_tree move_mount
        fsopen fsconfig fsmount fspick mount_setattr memfd_create memfd_secret""",
    "memory": """mmap munmap mprotect brk mremap msync mincore madvise mlock munlock mlockall
        munlockall mlock2 membarrier remap_file_pages mbind set_mempolicy get_mempolicy
        migrate_pages move_pages pkey_mprotect pkey_alloc pkey_free process_madvise
        process_mrelease userfaultfd set_mempolicy_home_node""",
    "processes": """getpid getppid gettid fork vfork clone clone3 execve execveat exit
        exit_group wait4 waitid set_tid_address set_robust_list get_robust_list prctl
        arch_prctl personality getpgid setpgid getpgrp setsid getsid uname sched_yield
        sched_getaffinity sched_setaffinity sched_getparam sched_setparam
        sched_getscheduler sched_setscheduler sched_get_priority_max
        sched_get_priority_min sched_rr_get_interval sched_setattr sched_getattr
        getpriority setpriority getcpu getrlimit setrlimit prlimit64 getrusage times
        sysinfo futex futex_waitv unshare setns kcmp pidfd_open pidfd_send_signal
        pidfd_getfd process_vm_readv process_vm_writev ptrace rseq seccomp
        modify_ldt iopl ioperm vhangup acct sethostname setdomainname getrandom syslog
        reboot kexec_load kexec_file_load init_module finit_module delete_module
        create_module get_kernel_syms query_module swapon swapoff""",
    "credentials": """getuid getgid geteuid getegid setuid setgid setreuid setregid setresuid
        getresuid setresgid getresgid getgroups setgroups setfsuid setfsgid capget capset
        add_key request_key keyctl landlock_create_ruleset landlock_add_rule
        landlock_restrict_self""",
    "signals": """rt_sigaction rt_sigprocmask rt_sigreturn rt_sigpending rt_sigtimedwait
        rt_sigqueueinfo rt_tgsigqueueinfo rt_sigsuspend sigaltstack pause alarm kill tkill
        tgkill getitimer setitimer signalfd signalfd4 restart_syscall""",
    "time": """nanosleep clock_nanosleep clock_gettime clock_getres clock_settime
        clock_adjtime adjtimex gettimeofday settimeofday time timer_create timer_settime
        timer_gettime timer_getoverrun timer_delete timerfd_create timerfd_settime
        timerfd_gettime""",
    "events": """poll ppoll select pselect6 epoll_create epoll_create1 epoll_ctl epoll_wait
        epoll_pwait epoll_pwait2 epoll_ctl_old epoll_wait_old eventfd eventfd2 pipe pipe2""",
    "network": """socket socketpair bind listen connect accept accept4 sendto recvfrom
        sendmsg recvmsg sendmmsg recvmmsg shutdown getsockname getpeername setsockopt
        getsockopt""",
    "IPC": """msgget msgsnd msgrcv msgctl semget semop semctl semtimedop shmget shmat
        shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify
        mq_getsetattr""",
}

_BY_NAME = {name: fam for fam, names in FAMILIES.items() for name in names.split()}
ORDER = list(FAMILIES) + ["other"]


def family(name: str) -> str:
    return _BY_NAME.get(name, "other")
