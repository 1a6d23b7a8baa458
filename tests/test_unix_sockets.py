"""AF_UNIX sockets.

The C programs in tests/progs/unix_*.c run natively and inside pysentry; what they print
(no pids, no fd numbers: relative facts only) and their exit status must match. Together
they cover socketpair echo between processes, large blocking transfers, datagram and
seqpacket boundaries, EOF/EPIPE/SIGPIPE, poll and epoll states, bind/listen/accept/connect
on a /tmp path and in the abstract namespace, backlogs and blocking connect/accept,
SCM_RIGHTS and SCM_CREDENTIALS, SO_PEERCRED, socket options and bad arguments.

The unit tests below drive vfs/unix.py directly for what a program cannot observe
reliably natively (the in-flight garbage collector's bookkeeping, the in-flight bound)
and for the families that wait for the netstack.
"""
import os
import random
import re

import pytest

from conftest import assert_same, compile_c, run_native, run_sandbox

from pysentry.sentry.kernel.errors import SysError, WouldBlock
from pysentry.sentry.kernel.wait import POLLHUP, POLLIN
from pysentry.sentry.vfs import unix
from pysentry.sentry.vfs.pipe import make_pipe
from pysentry.sentry.vfs.tmpfs import TmpFS
from pysentry.sentry.vfs.unix import (SOCK_DGRAM, SOCK_STREAM, Control, RecvState,
                                      SocketCaller, UnixDomain, create_socket,
                                      make_socketpair, parse_address)
from pysentry.sentry.vfs.vfs import VirtualFS


@pytest.mark.parametrize("name", ["unix_pair", "unix_listen", "unix_fdpass", "unix_dgram",
                                  "unix_sockopt", "unix_badargs"])
def test_program_matches_native(name):
    assert_same([compile_c(name)])


CPYTHON_TESTS = "/usr/lib/python3.11/test/test_socket.py"
CPYTHON_UNIX_SELECTION = ["-m", "*Unix*", "-m", "*SCMRights*", "-m", "*Socketpair*",
                          "-m", "*Linux*Abstract*", "-m", "TestUnixDomain",
                          "-m", "BasicSocketPairTest", "-m", "*Seqpacket*"]


@pytest.mark.skipif(not os.path.exists(CPYTHON_TESTS),
                    reason="needs CPython's regression tests (Debian's libpython3.11-testsuite)")
def test_cpython_unix_socket_tests_pass_as_natively():
    """CPython's own AF_UNIX tests (threads, sendmsg/recvmsg with SCM_RIGHTS, abstract
    names, timeouts), run by the python3 of the host root, inside and outside."""
    argv = ["/usr/bin/python3", "-m", "test", "test_socket", "-v", *CPYTHON_UNIX_SELECTION]
    nat = run_native(argv, timeout=300)
    box = run_sandbox(argv, timeout=300)
    ran = re.compile(rb"^Ran (\d+) tests", re.M)
    assert nat.returncode == 0 and ran.search(nat.stdout), nat.stdout[-2000:]
    assert box.returncode == 0, box.stdout[-4000:] + box.stderr[-2000:]
    assert ran.search(box.stdout).group(1) == ran.search(nat.stdout).group(1)
    assert b"Tests result: SUCCESS" in box.stdout


INET_PROBE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
int main(void) {
    int fams[] = {AF_INET, AF_INET6, AF_NETLINK, AF_PACKET};
    for (int i = 0; i < 4; i++) {
        int s = socket(fams[i], SOCK_DGRAM, 0);
        printf("%d %s\n", fams[i], s < 0 ? strerrorname_np(errno) : "ok");
    }
    return 0;
}
"""


def test_network_families_wait_for_the_netstack():
    """A deliberate divergence until the netstack lands (the table says so too)."""
    box = run_sandbox([compile_c(INET_PROBE)])
    assert box.returncode == 0, box.stderr
    assert box.stdout.decode().split("\n")[:4] == [
        "2 EAFNOSUPPORT", "10 EAFNOSUPPORT", "16 EAFNOSUPPORT", "17 EAFNOSUPPORT"]


# ---- in-process ------------------------------------------------------------------------
@pytest.fixture
def world():
    vfs = VirtualFS(TmpFS())
    caller = SocketCaller(vfs.root_context(), 7, 0, 0, 0, 0)
    return UnixDomain(vfs), caller


def _send(sock, caller, data=b"x", rights=()):
    return sock.sendmsg(caller, [memoryview(data)], None, Control(tuple(rights)), 0)


def _recv(sock, want=64):
    st = RecvState()
    return sock.recvmsg(want, unix.MSG_DONTWAIT, st), st


def test_socket_sent_into_its_own_queue_is_collected(world):
    dom, caller = world
    a, b = make_socketpair(dom, caller, SOCK_STREAM, 0)
    _send(b, caller, rights=[a])           # a's only other reference travels to a itself
    assert dom.inflight == {a: 1}
    a.decref()                             # the opener's reference: now unreachable
    assert a.ep.dead and dom.inflight == {} and dom.inflight_total == 0
    assert b.readiness(POLLIN) & POLLHUP
    assert _recv(b)[0] == b""              # end of file
    b.decref()


def test_socket_reachable_from_a_live_queue_is_kept(world):
    dom, caller = world
    a, b = make_socketpair(dom, caller, SOCK_STREAM, 0)
    _send(a, caller, b"hi", rights=[a])    # lands in b's queue; b has a descriptor
    a.decref()
    assert not a.ep.dead and a.refs == 1
    data, st = _recv(b)
    assert data == b"hi" and st.rights == [a] and dom.inflight == {}
    assert _send(a, caller, b"again") == 5  # the received socket still works
    st.drop_rights()                       # the receiver never installed it: gone now
    assert a.ep.dead
    b.decref()


def test_two_sockets_holding_each_other_are_collected(world):
    dom, caller = world
    a, b = make_socketpair(dom, caller, SOCK_DGRAM, 0)
    c, d = make_socketpair(dom, caller, SOCK_DGRAM, 0)
    _send(b, caller, rights=[c])           # c waits in a's queue
    _send(d, caller, rights=[a])           # a waits in c's queue
    a.decref()
    c.decref()
    assert a.ep.dead and c.ep.dead and dom.inflight_total == 0
    b.decref()
    d.decref()


def test_a_long_chain_of_sockets_inside_sockets_is_released_without_recursion(world):
    dom, caller = world
    pairs = [make_socketpair(dom, caller, SOCK_STREAM, 0) for _ in range(400)]
    for (a, b), (nxt, _) in zip(pairs, pairs[1:]):
        _send(b, caller, rights=[nxt])     # each a holds the next a in its queue
        nxt.decref()
    for _, b in pairs:
        b.decref()
    head = pairs[0][0]
    assert not pairs[-1][0].ep.dead
    head.decref()                          # releases the whole chain, iteratively
    assert all(a.ep.dead for a, _ in pairs)
    assert dom.inflight == {} and dom.inflight_total == 0


def test_closing_a_listener_drops_what_its_pending_connections_carried(world):
    dom, caller = world
    listener = create_socket(dom, caller, SOCK_STREAM, 0)
    listener.bind(caller, b"\x01\x00/srv")
    listener.listen(caller, 5)
    client = create_socket(dom, caller, SOCK_STREAM, 0)
    client.connect(caller, b"\x01\x00/srv")
    r, w = make_pipe()
    _send(client, caller, rights=[w])
    w.decref()
    assert r.pipe.writers == 1             # only the message keeps the writer open
    listener.decref()
    assert r.pipe.writers == 0 and dom.inflight_total == 0
    with pytest.raises(SysError) as e:
        _recv(client)
    assert e.value.errno == 104            # ECONNRESET
    client.decref()
    r.decref()


def test_descriptions_in_flight_are_bounded(world, monkeypatch):
    dom, caller = world
    monkeypatch.setattr(unix, "MAX_INFLIGHT", 3)
    a, b = make_socketpair(dom, caller, SOCK_DGRAM, 0)
    r, w = make_pipe()
    _send(a, caller, rights=[r, w])
    with pytest.raises(SysError) as e:
        _send(a, caller, rights=[r, w])
    assert e.value.errno == 109            # ETOOMANYREFS
    _recv(b)[1].drop_rights()
    _send(a, caller, rights=[r, w])
    for f in (a, b, r, w):
        f.decref()


def test_full_stream_buffer_blocks_and_frees_on_read(world):
    dom, caller = world
    a, b = make_socketpair(dom, caller, SOCK_STREAM, 0)
    sent = _send(a, caller, bytes(1 << 20))
    assert 0 < sent < 1 << 20              # the send buffer took what it could
    with pytest.raises(WouldBlock):
        _send(a, caller, b"more")
    got = 0
    while True:
        try:
            got += len(_recv(b, 1 << 16)[0])
        except WouldBlock:
            break
    assert got == sent and a.ep.wmem == 0 and _send(a, caller, b"more") == 4
    a.decref()
    b.decref()


def test_addresses_from_the_program_never_crash_the_parser():
    rng = random.Random(1234)
    for _ in range(3000):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 140)))
        if rng.random() < 0.5 and len(raw) >= 2:
            raw = b"\x01\x00" + raw[2:]
        for for_bind in (False, True):
            try:
                name = parse_address(raw, for_bind)
            except SysError as e:
                assert e.errno == 22       # EINVAL
                continue
            assert name is None or (isinstance(name, bytes) and 0 < len(name) <= 108
                                    and (name[0] == 0 or b"\0" not in name))


def test_path_names_live_in_the_file_system(world):
    dom, caller = world
    s = create_socket(dom, caller, SOCK_DGRAM, 0)
    s.bind(caller, b"\x01\x00/sock\x00junk")
    st = dom.vfs.stat(caller.ctx, None, b"/sock", follow=False)
    assert st.mode >> 12 == 0o14           # S_IFSOCK
    assert s.sockname() == b"\x01\x00/sock\x00"
    s.decref()
    with pytest.raises(SysError) as e:     # the node stays, nobody answers
        dom.lookup(caller, b"/sock", SOCK_DGRAM)
    assert e.value.errno == 111            # ECONNREFUSED
    assert dom.vfs.stat(caller.ctx, None, b"/sock", follow=False)   # still there to unlink
