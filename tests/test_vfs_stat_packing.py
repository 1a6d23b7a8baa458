"""struct stat / statx / statfs as packed by pysentry.sentry.vfs.stat, compared byte for
byte with what the host kernel writes for the same file (a C program compiled here)."""
import os
import shutil
import subprocess
import textwrap

import pytest

from pysentry.sentry.vfs.stat import (STATX_BASIC_STATS, STATX_BTIME, STATX_MNT_ID, Stat,
                                      StatFS, makedev)

C_SOURCE = textwrap.dedent(r"""
    #define _GNU_SOURCE
    #include <fcntl.h>
    #include <stddef.h>
    #include <stdio.h>
    #include <sys/stat.h>
    #include <sys/statfs.h>
    #include <sys/sysmacros.h>

    static void hex(const char *tag, const void *p, size_t n) {
        const unsigned char *b = p;
        printf("%s ", tag);
        for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
        printf("\n");
    }

    int main(int argc, char **argv) {
        struct stat st; struct statx sx; struct statfs sf;
        printf("sizeof_stat %zu\n", sizeof st);
        printf("off_stat %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu\n",
               offsetof(struct stat, st_dev), offsetof(struct stat, st_ino),
               offsetof(struct stat, st_nlink), offsetof(struct stat, st_mode),
               offsetof(struct stat, st_uid), offsetof(struct stat, st_gid),
               offsetof(struct stat, st_rdev), offsetof(struct stat, st_size),
               offsetof(struct stat, st_blksize), offsetof(struct stat, st_blocks),
               offsetof(struct stat, st_atim), offsetof(struct stat, st_mtim),
               offsetof(struct stat, st_ctim));
        printf("sizeof_statx %zu\n", sizeof sx);
        printf("off_statx %zu %zu %zu %zu %zu %zu %zu %zu\n",
               offsetof(struct statx, stx_mode), offsetof(struct statx, stx_ino),
               offsetof(struct statx, stx_atime), offsetof(struct statx, stx_btime),
               offsetof(struct statx, stx_mtime), offsetof(struct statx, stx_rdev_major),
               offsetof(struct statx, stx_dev_minor), offsetof(struct statx, stx_mnt_id));
        printf("sizeof_statfs %zu\n", sizeof sf);
        for (int i = 1; i < argc; i++) {
            if (lstat(argv[i], &st) || statx(AT_FDCWD, argv[i], AT_SYMLINK_NOFOLLOW,
                    STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID, &sx) || statfs(argv[i], &sf)) {
                perror(argv[i]); return 1;
            }
            hex("stat", &st, sizeof st);
            hex("statx", &sx, sizeof sx);
            hex("statfs", &sf, sizeof sf);
            printf("fields %llu %llu %u %llu %u %u %llu %lld %lld %lld "
                   "%lld %ld %lld %ld %lld %ld\n",
                   (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, st.st_mode,
                   (unsigned long long)st.st_nlink, st.st_uid, st.st_gid,
                   (unsigned long long)st.st_rdev, (long long)st.st_size,
                   (long long)st.st_blksize, (long long)st.st_blocks,
                   (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
                   (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                   (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
            printf("xfields %u %llu %lld %u %llu %llu %u %u\n", sx.stx_mask,
                   (unsigned long long)sx.stx_btime.tv_sec,
                   (long long)sx.stx_btime.tv_nsec, sx.stx_blksize,
                   (unsigned long long)sx.stx_attributes,
                   (unsigned long long)sx.stx_attributes_mask,
                   sx.stx_dev_major, sx.stx_dev_minor);
            printf("mnt_id %llu\n", (unsigned long long)sx.stx_mnt_id);
            printf("ffields %ld %ld %lu %lu %lu %lu %lu %d %d %ld %ld %ld\n",
                   (long)sf.f_type, (long)sf.f_bsize, (unsigned long)sf.f_blocks,
                   (unsigned long)sf.f_bfree, (unsigned long)sf.f_bavail,
                   (unsigned long)sf.f_files, (unsigned long)sf.f_ffree,
                   sf.f_fsid.__val[0], sf.f_fsid.__val[1], (long)sf.f_namelen,
                   (long)sf.f_frsize, (long)sf.f_flags);
        }
        return 0;
    }
""")

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the oracle")


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    d = tmp_path_factory.mktemp("statpack")
    src = d / "st.c"
    src.write_text(C_SOURCE)
    exe = d / "st"
    subprocess.run(["gcc", "-O0", "-o", str(exe), str(src)], check=True)
    f = d / "file"
    f.write_bytes(b"x" * 5000)
    os.chmod(f, 0o4751)
    os.symlink("file", d / "link")
    paths = [str(f), str(d), "/dev/null", str(d / "link")]
    out = subprocess.run([str(exe), *paths], check=True, capture_output=True, text=True).stdout
    records, current, header = [], None, {}
    for line in out.splitlines():
        key, _, rest = line.partition(" ")
        if key in ("sizeof_stat", "sizeof_statx", "sizeof_statfs", "off_stat", "off_statx"):
            header[key] = [int(x) for x in rest.split()]
        elif key == "stat":
            current = {"stat": bytes.fromhex(rest)}
            records.append(current)
        elif key in ("statx", "statfs"):
            current[key] = bytes.fromhex(rest)
        else:
            current[key] = [int(x) for x in rest.split()]
    return header, dict(zip(paths, records))


def test_struct_sizes_and_offsets(native):
    header, _ = native
    assert header["sizeof_stat"] == [144]
    assert header["sizeof_statx"] == [256]
    assert header["sizeof_statfs"] == [120]
    assert header["off_stat"] == [0, 8, 16, 24, 28, 32, 40, 48, 56, 64, 72, 88, 104]
    assert header["off_statx"] == [28, 32, 64, 80, 112, 128, 140, 144]


def _stat_from_fields(f, x=None, mnt_id=0):
    (dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks,
     asec, ansec, msec, mnsec, csec, cnsec) = f
    st = Stat(dev=dev, ino=ino, mode=mode, nlink=nlink, uid=uid, gid=gid, rdev=rdev,
              size=size, blksize=blksize, blocks=blocks,
              atime=asec * 10**9 + ansec, mtime=msec * 10**9 + mnsec,
              ctime=csec * 10**9 + cnsec)
    if x is not None:
        _mask, bsec, bnsec, _blksize, attributes, attributes_mask, _maj, _min = x
        st.btime = bsec * 10**9 + bnsec
        st.attributes = attributes
        st.attributes_mask = attributes_mask
        st.mnt_id = mnt_id
    return st


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_pack_stat_matches_kernel(native, which):
    _, recs = native
    path, rec = list(recs.items())[which]
    st = _stat_from_fields(rec["fields"])
    # The fields the C program printed are the ones Python sees too.
    ost = os.lstat(path)
    assert (st.ino, st.mode, st.size, st.dev, st.rdev) == (ost.st_ino, ost.st_mode, ost.st_size,
                                                            ost.st_dev, ost.st_rdev)
    assert st.pack_stat() == rec["stat"]


@pytest.mark.parametrize("which", [0, 1, 2, 3])
def test_pack_statx_matches_kernel(native, which):
    _, recs = native
    path, rec = list(recs.items())[which]
    st = _stat_from_fields(rec["fields"], rec["xfields"], rec["mnt_id"][0])
    mine = st.pack_statx(STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID)
    theirs = rec["statx"]
    kernel_mask = int.from_bytes(theirs[0:4], "little")
    assert kernel_mask & (STATX_BASIC_STATS | STATX_BTIME | STATX_MNT_ID) == \
        int.from_bytes(mine[0:4], "little")
    # Everything after the mask: identical up to the dio alignment fields (not requested),
    # which we leave zero; the kernel's spare space is zero as well.
    assert mine[4:152] == theirs[4:152]
    assert mine[152:] == bytes(104)


@pytest.mark.parametrize("which", [0, 2])
def test_pack_statfs_matches_kernel(native, which):
    _, recs = native
    _, rec = list(recs.items())[which]
    (ftype, bsize, blocks, bfree, bavail, files, ffree, fsid0, fsid1, namelen, frsize,
     flags) = rec["ffields"]
    sf = StatFS(fstype_magic=ftype, bsize=bsize, blocks=blocks, bfree=bfree, bavail=bavail,
                files=files, ffree=ffree, fsid=(fsid0, fsid1), namelen=namelen,
                frsize=frsize, flags=flags)
    assert sf.pack_statfs() == rec["statfs"]


def test_device_numbers_encode_like_glibc():
    for major, minor in ((0, 0), (1, 3), (8, 17), (259, 5), (4095, 1 << 19), (1 << 12, 300)):
        assert makedev(major, minor) == os.makedev(major, minor)


def test_stat_records_compare_by_value_and_are_mutable_and_unhashable():
    """Stat and StatFS are kernel/record.py Records (no dataclasses at start-up): keyword
    or positional construction with the same defaults, equality by value, fields settable,
    unhashable like a mutable dataclass."""
    a = Stat(dev=1, ino=2, mode=0o100644, size=10)
    b = Stat(1, 2, 0o100644, 1, 0, 0, 0, 10)
    assert a == b and a.nlink == 1 and a.blksize == 4096 and a.btime is None
    b.size = 11
    assert a != b and b.size == 11
    with pytest.raises(TypeError):
        hash(a)
    assert repr(Stat()).startswith("Stat(dev=0, ino=0, mode=0, nlink=1, ")
    from pysentry.sentry.vfs.stat import StatFS
    assert StatFS(bsize=512) == StatFS(0, 512) and StatFS().fsid == (0, 0)
    assert StatFS() != Stat()
