import json, os, signal, subprocess, sys, tempfile, threading
out = []
lock = threading.Lock()
def work(i):
    with lock: out.append(i * i)
ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print("threads", sorted(out))
r = subprocess.run(["/bin/echo", "from", "subprocess"], capture_output=True, text=True)
print("subprocess", r.returncode, r.stdout.strip())
r = subprocess.run("echo $((2+3)) | cat", shell=True, capture_output=True, text=True)
print("shell", r.stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(7)
_, st = os.waitpid(pid, 0)
print("fork", os.waitstatus_to_exitcode(st))
got = []
signal.signal(signal.SIGUSR1, lambda s, f: got.append(s))
os.kill(os.getpid(), signal.SIGUSR1)
print("signal", got)
with tempfile.TemporaryDirectory() as d:
    p = os.path.join(d, "x.json")
    with open(p, "w") as f: json.dump({"k": [1, 2, 3]}, f)
    with open(p) as f: print("tempfile", json.load(f), sorted(os.listdir(d)))
print("done")
