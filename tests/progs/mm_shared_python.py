"""multiprocessing.shared_memory between processes: a forked multiprocessing.Process, and a
separate interpreter that attaches by name (nothing but /dev/shm connects it to us)."""
import subprocess
import sys
from multiprocessing import Process, shared_memory


def child(name):
    shm = shared_memory.SharedMemory(name=name)
    print("child sees", bytes(shm.buf[:12]), flush=True)
    shm.buf[16:32] = b"written by child"
    shm.close()


ATTACH = """
import sys
from multiprocessing import shared_memory, resource_tracker
shm = shared_memory.SharedMemory(name=sys.argv[1])
resource_tracker.unregister(shm._name, "shared_memory")   # the creator unlinks it
print("other interpreter sees", bytes(shm.buf[16:32]), flush=True)
shm.buf[64:80] = b"from interpreter"
shm.close()
"""

if __name__ == "__main__":
    shm = shared_memory.SharedMemory(create=True, size=1 << 20)
    try:
        shm.buf[:12] = b"from creator"
        shm.buf[(1 << 20) - 4:] = b"tail"
        p = Process(target=child, args=(shm.name,))
        p.start()
        p.join()
        print("exit code", p.exitcode)
        print("creator sees", bytes(shm.buf[16:32]))
        r = subprocess.run([sys.executable, "-c", ATTACH, shm.name])
        print("interpreter status", r.returncode)
        print("creator sees", bytes(shm.buf[64:80]), bytes(shm.buf[(1 << 20) - 4:]))
    finally:
        shm.close()
        shm.unlink()
