"""sqlite in WAL mode across processes: the WAL index (-shm file) is a MAP_SHARED mapping
each connection makes; a reader only sees another process's commits through it.
argv[1]: a directory for the database."""
import os
import sqlite3
import subprocess
import sys

db = os.path.join(sys.argv[1], f"wal-{os.getpid()}.db")
a = sqlite3.connect(db)
print(a.execute("pragma journal_mode=wal").fetchone())
a.execute("create table t(x)")
a.commit()
print("parent before", a.execute("select count(*) from t").fetchone())
pid = os.fork()
if pid == 0:
    b = sqlite3.connect(db)
    for i in range(100):
        b.execute("insert into t values(?)", (i,))
        b.commit()
    print("child", b.execute("select count(*), sum(x) from t").fetchone(), flush=True)
    b.close()
    os._exit(0)
os.waitpid(pid, 0)
print("parent after child", a.execute("select count(*), sum(x) from t").fetchone())
a.execute("insert into t values(1000)")
a.commit()
other = subprocess.run(["sqlite3", db, "select count(*), sum(x) from t"], capture_output=True,
                       text=True)
print("sqlite3 tool", other.stdout.strip(), other.returncode)
a.close()
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(db + suffix):
        os.unlink(db + suffix)
