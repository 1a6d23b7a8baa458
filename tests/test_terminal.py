"""The interactive shell as a person uses it: a real terminal driven through tmux."""
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Tmux:
    def __init__(self, command):
        self.name = "pysentry-" + uuid.uuid4().hex[:8]
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "30",
                        command], check=True)

    def send(self, *keys):
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def screen(self):
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name],
                             capture_output=True, text=True)
        return out.stdout

    def wait_for(self, text, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.1)
        raise AssertionError(f"{text!r} did not appear; screen:\n{self.screen()}")

    def alive(self):
        return subprocess.run(["tmux", "has-session", "-t", self.name],
                              capture_output=True).returncode == 0

    def kill(self):
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.fixture
def shell(tmp_path):
    status = tmp_path / "status"
    cmd = (f"cd {tmp_path} && PS1='box$ ' {sys.executable} -m pysentry.sentry.cli run -- "
           f"/bin/sh -i; echo $? > {status}; sleep 30")
    t = Tmux(cmd)
    t.status_file = status
    try:
        yield t
    finally:
        t.kill()


def test_prompt_echo_ctrl_c_and_exit_status(shell):
    shell.wait_for("box$")
    shell.send("echo hi from the box", "Enter")
    shell.wait_for("\nhi from the box")
    shell.send("sleep 100", "Enter")
    time.sleep(1.0)
    shell.send("C-c")
    # The shell survives the interrupt and gives a new prompt (a person waits for it).
    deadline = time.monotonic() + 20
    while shell.screen().count("box$") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    shell.send("echo still here", "Enter")
    shell.wait_for("\nstill here", timeout=20)
    shell.send("exit 3", "Enter")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not shell.status_file.exists():
        time.sleep(0.1)
    assert shell.status_file.read_text().strip() == "3"


def test_line_editing_backspace(shell):
    shell.wait_for("box$")
    shell.send("echo abX", "BSpace", "c", "Enter")
    shell.wait_for("\nabc")


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_job_control_stop_background_foreground():
    t = Tmux(f"cd /var/tmp && {sys.executable} -m pysentry.sentry.cli run -- /bin/bash --norc -i; "
             "sleep 30")
    try:
        t.wait_for("bash-")          # the prompt (tmux drops its trailing space)
        t.send("sleep 50", "Enter")
        time.sleep(1.0)
        t.send("C-z")
        t.wait_for("Stopped                 sleep 50")
        t.send("bg", "Enter")
        t.wait_for("sleep 50 &")
        t.send("jobs", "Enter")
        t.wait_for("Running                 sleep 50 &")
        t.send("kill %1", "Enter")
        time.sleep(0.5)
        t.send("jobs", "Enter")       # bash reports the job's end at its next prompt
        t.wait_for("Terminated              sleep 50")
        t.send("sleep 60 &", "Enter")
        t.send("fg", "Enter")
        time.sleep(1.0)
        t.send("C-c")
        t.send("echo back at the prompt", "Enter")
        t.wait_for("\nback at the prompt")
    finally:
        t.kill()
