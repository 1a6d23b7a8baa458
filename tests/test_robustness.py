"""Bad input from the application never takes the sentry down."""
import os
import subprocess
import sys
import textwrap

from conftest import BUILD, compile_c, run_sandbox


def _file(name, data, mode=0o755):
    BUILD.mkdir(parents=True, exist_ok=True)
    path = BUILD / name
    path.write_bytes(data)
    os.chmod(path, mode)
    return str(path)


def test_malformed_elf_fails_execve_and_the_caller_goes_on():
    garbage = _file("garbage-elf", b"\x7fELF" + os.urandom(200))
    truncated = _file("truncated-elf", open("/bin/true", "rb").read()[:100])
    prog = compile_c(r'''
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        char *args[] = {argv[i], 0};
        execv(argv[i], args);
        printf("%s: %s\n", strrchr(argv[i], '/') + 1, strerror(errno));
    }
    return 0;
}''')
    box = run_sandbox([prog, garbage, truncated, "/nonexistent"])
    assert box.returncode == 0, box.stderr
    assert box.stdout.decode().splitlines() == [
        "garbage-elf: Exec format error", "truncated-elf: Exec format error",
        "nonexistent: No such file or directory"]


def test_shebang_script_runs_through_its_interpreter():
    script = _file("script.sh", b"#!/bin/sh -e\necho \"script $0 $1\"\n")
    box = run_sandbox([script, "arg1"])
    assert box.returncode == 0, box.stderr
    assert box.stdout == f"script {script} arg1\n".encode()


def test_internal_error_in_a_handler_kills_only_that_process():
    # A handler that raises a non-SysError is a sentry bug: the process that made the call
    # dies (SIGSYS) with a logged traceback; the sentry and the other processes go on.
    child = compile_c(r'''
#include <unistd.h>
#include <sys/syscall.h>
int main(void) { syscall(SYS_getppid); return 0; }''')
    parent = compile_c(r'''
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    pid_t c = fork();
    if (!c) { execl(argv[1], argv[1], (char *)0); _exit(99); }
    int st; waitpid(c, &st, 0);
    printf("child signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
}''')
    code = textwrap.dedent(f'''
        import sys
        from pysentry.sentry.syscalls import table, process
        calls = []
        def broken(t, *a):
            if t.tg.tgid != 1:
                raise RuntimeError("deliberate bug")
            return t.tg.parent.tgid if t.tg.parent else 0
        table.load_all()
        table.TABLE[table.NUMBERS["getppid"]].handler = broken
        from pysentry.sentry.cli import main
        sys.exit(main(["run", "--", {parent!r}, {child!r}]))
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"child signaled 1 sig 31\n"
    assert b"deliberate bug" in out.stderr and b"internal error" in out.stderr
