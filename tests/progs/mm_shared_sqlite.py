"""sqlite in WAL mode across processes: the WAL index (-shm file) is a MAP_SHARED mapping
each connection's process makes; a reader sees another process's commits (still in the
WAL, not checkpointed) only through it. argv[1]: a directory for the database."""
import os
import sqlite3
import subprocess
import sys

WRITER = """
import sqlite3, sys
b = sqlite3.connect(sys.argv[1])
b.execute("pragma wal_autocheckpoint=0")      # the commits stay in the WAL
for i in range(100):
    b.execute("insert into t values(?)", (i,))
    b.commit()
print("writer", b.execute("select count(*), sum(x) from t").fetchone(), flush=True)
sys.stdin.read(1)                             # stay connected while the others read
"""

db = os.path.join(sys.argv[1], f"wal-{os.getpid()}.db")
a = sqlite3.connect(db)
print(a.execute("pragma journal_mode=wal").fetchone())
a.execute("create table t(x)")
a.commit()
print("reader before", a.execute("select count(*) from t").fetchone())
w = subprocess.Popen([sys.executable, "-c", WRITER, db], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, text=True)
print(w.stdout.readline().strip())
print("reader after", a.execute("select count(*), sum(x) from t").fetchone())
tool = subprocess.run(["sqlite3", db, "select count(*), sum(x) from t"], capture_output=True,
                      text=True)
print("sqlite3 tool", tool.stdout.strip(), tool.returncode)
w.stdin.write("x")
w.stdin.close()
print("writer status", w.wait())
a.execute("insert into t values(1000)")
a.commit()
print("at end", a.execute("select count(*), sum(x) from t").fetchone())
a.close()
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(db + suffix):
        os.unlink(db + suffix)
