"""execve: build a fresh address space from an executable (ELF, or a #! script)."""
import errno
import os

from ..mm import filemap
from ..mm.addrspace import AddressSpace, PROT_READ, PROT_WRITE, page_up
from ..mm.elf import image_span, parse_elf, parse_shebang, plan_load, default_load_bias
from ..mm.memfile import PAGE
from ..mm.stack import build_initial_stack, arg_limit_for_rlimit
from ..vfs.file import RegularFile
from .errors import SysError

AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_HWCAP, AT_CLKTCK, AT_SECURE, AT_HWCAP2 = 11, 12, 13, 14, 16, 17, 23, 26
AT_MINSIGSTKSZ = 51
MAX_SHEBANG_DEPTH = 4
PIE_BASE = 0x555555554000
STACK_TOP = 0x7ffffffde000


class ExecImage:
    """Everything execve decided, to be installed in the task only once nothing can fail."""

    def __init__(self, mm, entry, sp, exe_path, argv0):
        self.mm, self.entry, self.sp, self.exe_path, self.argv0 = mm, entry, sp, exe_path, argv0


def _read_all_at(desc, offset, size) -> bytes:
    buf = bytearray(size)
    n = desc.pread_for_mmap(offset, memoryview(buf))
    return bytes(buf[:n])


def _load_elf(mm, desc, header, bias_hint=None, stat=None, name=b""):
    size = stat.size
    image = parse_elf(header, lambda off, n: _exact(desc, off, n), file_size=size)
    if image.e_type == 3:          # ET_DYN
        bias = default_load_bias(image)
        if bias is None or bias_hint is not None:
            span = image_span(image)
            bias = mm.find_free(page_up(span.size + span.align)) if bias_hint else PIE_BASE
            bias = (bias + span.align - 1) & ~(span.align - 1) if span.align > PAGE else bias
            bias -= image.segments[0].vaddr & ~(PAGE - 1)
    else:
        bias = 0
    plan = plan_load(image, bias)
    for m in plan:
        if m.end > mm.max_addr:
            raise SysError(errno.ENOMEM)
        if (isinstance(desc, RegularFile) and m.file_bytes and not m.prot & PROT_WRITE
                and m.file_bytes == min(m.length, size - m.file_offset)):
            # Program text is a plain private mapping of file pages, as mmap makes it: it
            # maps the file's FileMap pages copy-on-write, so exec after exec of the same
            # program reads and stores them once (filemap.py keeps them between execs).
            with filemap.mapping(desc, mm.memfile, m.file_offset, m.length) as fm:
                mm.map_file_pages(m.start, m.length, m.prot, False, fm.region,
                                  m.file_offset // PAGE, name, m.file_offset, stat.dev,
                                  stat.ino)
            continue

        def fill(dst, m=m):
            if m.file_bytes:
                got = desc.pread_for_mmap(m.file_offset, dst[:m.file_bytes])
                if got < m.file_bytes:
                    raise SysError(errno.EIO)
        v = mm.map_file_private(m.start, m.length, m.prot, fill, name, m.file_offset,
                                stat.dev, stat.ino)
        if not m.file_bytes:
            v.file, v.name = None, b""       # pure bss: anonymous, as Linux shows it
    return image, plan


def _exact(desc, off, n):
    data = _read_all_at(desc, off, n)
    if len(data) != n:
        raise SysError(errno.ENOEXEC)
    return data


def load(kernel, task, path: bytes, argv: list, envp: list, depth=0, dir=None,
         location=None) -> ExecImage:
    """`dir` is the Location a relative path starts from (execveat's dirfd); `location`,
    the file itself when the caller already has it (execveat with AT_EMPTY_PATH: `path`
    is then the name Linux gives it, /dev/fd/N)."""
    ctx = task.path_context()
    if location is not None:
        desc = kernel.vfs.open_location_for_exec(ctx, location)
    else:
        desc = kernel.vfs.open_for_exec(ctx, dir, path)
    try:
        header = _read_all_at(desc, 0, PAGE)
        stat = desc.stat()
        if header[:2] == b"#!":
            if depth >= MAX_SHEBANG_DEPTH:
                raise SysError(errno.ELOOP)
            parsed = parse_shebang(header)
            if parsed is None:
                raise SysError(errno.ENOEXEC)
            interp, arg = parsed
            new_argv = [interp] + ([arg] if arg else []) + [path] + list(argv[1:])
            return load(kernel, task, interp, new_argv, envp, depth + 1)
        if header[:4] != b"\x7fELF":
            raise SysError(errno.ENOEXEC)
        pas = kernel.platform.new_address_space(kernel.memfile)
        mm = AddressSpace(kernel.memfile, pas, kernel.platform.max_user_address)
        try:
            root = task.fs.root
            exe_name = desc.location.path_from(root) if desc.location else path
            image, plan = _load_elf(mm, desc, header, stat=stat, name=exe_name)
            entry = plan.entry
            interp_base = 0
            if image.interp is not None:
                idesc = kernel.vfs.open_for_exec(ctx, None, image.interp)
                try:
                    ihead = _read_all_at(idesc, 0, PAGE)
                    iname = idesc.location.path_from(root) if idesc.location else image.interp
                    iimage, iplan = _load_elf(mm, idesc, ihead, bias_hint=True, stat=idesc.stat(),
                                              name=iname)
                finally:
                    idesc.decref()
                if iimage.interp is not None:
                    raise SysError(errno.ELIBBAD)
                entry = iplan.entry
                interp_base = iplan.load_bias
            mm.brk_start = mm.brk = plan.brk_start
            mm.start_code, mm.end_code = plan.start_code, plan.end_code
            mm.start_data, mm.end_data = plan.start_data, plan.end_data
            mm.exe_location = desc.location
            # The stack: rlimit-sized, zero-filled, lazily backed.
            stack_size = min(task.tg.rlimits[3][0], 64 << 20)
            stack_size = max(page_up(stack_size), 128 << 10)
            mm.map_anon(STACK_TOP - stack_size, stack_size, PROT_READ | PROT_WRITE, False,
                        b"[stack]")
            mm.stack_top = STACK_TOP
            mm.mmap_base = STACK_TOP - stack_size - (1 << 28)
            tg = task.tg
            auxv = [(AT_HWCAP, 0x178bfbff), (AT_PAGESZ, PAGE), (AT_CLKTCK, 100),
                     (AT_PHDR, plan.phdr_addr), (AT_PHENT, 56), (AT_PHNUM, image.phnum),
                     (AT_BASE, interp_base), (AT_FLAGS, 0), (AT_ENTRY, plan.entry),
                     (AT_UID, tg.uid), (AT_EUID, tg.euid), (AT_GID, tg.gid),
                     (AT_EGID, tg.egid), (AT_SECURE, 0), (AT_HWCAP2, 2),
                     (AT_MINSIGSTKSZ, 2048)]
            st = build_initial_stack(STACK_TOP, argv, envp, auxv, path, os.urandom(16),
                                     arg_limit=arg_limit_for_rlimit(tg.rlimits[3][0]))
            mm.write(st.sp, st.data)
            mm.arg_start, mm.arg_end, mm.env_start, mm.env_end = (
                st.arg_start, st.arg_end, st.env_start, st.env_end)
            mm.auxv = b"".join(a.to_bytes(8, "little") + b.to_bytes(8, "little")
                               for a, b in st.auxv)
            mm.exe_name = exe_name
            mm.start_stack = STACK_TOP
            mm.map_all()      # where the platform finds it cheaper than a fault per VMA
            return ExecImage(mm, entry, st.sp, mm.exe_name, argv[0] if argv else b"")
        except BaseException:
            mm.release()
            raise
    finally:
        desc.decref()
