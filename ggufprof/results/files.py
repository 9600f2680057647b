"""Every file ggufprof writes goes through here: nothing is written through a link it did not create.

Why: a results directory may come from someone else (a colleague's sweep, a CI artifact, an
unpacked archive). A symbolic link planted in it under a name ggufprof writes (``report.md ->
~/.bashrc``, ``.ggufprof.lock -> ~/notes``) must not make ``report`` or ``sweep --resume`` overwrite,
truncate or append to the file it points to. And a write that fails half-way (a full disk, a kill)
must leave the old file, never an empty or torn one. So:

* A whole file (results.csv, a rewrite of results.jsonl, a log, report.html/.md, the plots, an
  ``--output``) is written into a new temporary file in the same directory, opened with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (it cannot be an existing path or a link), fsync'd, and then
  ``os.replace``'d over the destination: the destination is the old file or the new one, whatever
  happens in between.
* A destination that is a symbolic link, or not a regular file (a device, a pipe, a directory), is
  refused before anything is written: ggufprof neither writes through such a path nor replaces it.
* Appends (results.jsonl) and the lock file are opened with ``O_NOFOLLOW`` and must be regular
  files; the lock file, which is truncated, must also have no other name (a hard link).
* Directories ggufprof creates inside an output directory (``logs/``) must be real directories
  (``lstat``). The output directory itself is the one the user named, links included.
* A backup is a new hard link (``os.link`` never replaces an existing name), or a copy where the
  file system has no hard links.

Every failure is a GgufprofError that names the file (the CLI's one ``Error:`` line).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import GgufprofError

_NOFOLLOW = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: a planted FIFO cannot hang an open


LINK = "is a symbolic link"
NOT_FILE = "is not a regular file (a device, a pipe, a directory): ggufprof writes regular files only"
HARD_LINK = "has another name (a hard link)"


def _refused(path: Path, what: str) -> GgufprofError:
    advice = ("ggufprof never writes through or replaces a link it did not create (a link in a results "
              "directory from elsewhere could point anywhere): remove it or write elsewhere" if "link" in what
              else "write elsewhere")
    return GgufprofError(f"{path}: {what}; {advice}")


def _failed(path: Path, e: OSError, doing: str = "cannot write") -> GgufprofError:
    return GgufprofError(f"{path}: {doing}: {e.strerror or e}")


def check_destination(path: Path) -> None:
    """Refuse a destination that is a symbolic link or not a regular file; a missing one is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise _failed(path, e) from None
    if stat.S_ISLNK(st.st_mode):
        raise _refused(path, LINK)
    if not stat.S_ISREG(st.st_mode):
        raise _refused(path, NOT_FILE)


@contextlib.contextmanager
def replacing(path: Path, mode: str = "w") -> Iterator[IO]:
    """``with replacing(path) as f: f.write(...)``: ``path`` is replaced by what was written when the
    block ends without an error, and left as it was otherwise (the temporary file is removed).
    ``mode`` "w" (UTF-8 text, "\\n" line ends) or "wb"."""
    path = Path(path)
    check_destination(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_EXCL|O_NOFOLLOW
    except OSError as e:
        raise _failed(path, e) from None
    try:
        os.fchmod(fd, 0o644)
        f = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_destination(path)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _failed(path, e) from None
        raise


def write_file(path: Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8), as :func:`replacing` does."""
    with replacing(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def _open_regular(path: Path, flags: int, doing: str) -> int:
    """A file descriptor of ``path``, which must be a regular file reached without a link."""
    try:
        fd = os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _refused(path, LINK) from None
        raise _failed(path, e, doing) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _refused(path, NOT_FILE)
    return fd


def append(path: Path, data: bytes) -> None:
    """Append ``data`` with one write (and what a short write leaves, with more), then fsync. A file
    whose last line has no newline (a write cut off) gets one first, so ``data`` starts a line."""
    fd = _open_regular(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, "cannot write")  # read: its last byte
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as e:
        raise _failed(path, e, "writing failed") from None
    finally:
        os.close(fd)


def open_lock_file(path: Path) -> int:
    """The lock file's descriptor (read-write, created if missing). It is truncated by its holder, so
    it must be a regular file of one name: not a link, not a hard link to a file elsewhere."""
    fd = _open_regular(path, os.O_RDWR | os.O_CREAT, "cannot write here")
    if os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise _refused(path, HARD_LINK)
    return fd


def make_dir(path: Path, named: bool = False) -> Path:
    """Create ``path`` (and its parents). A directory ggufprof names itself inside an output
    directory (``logs/``) must be a real one, not a link to one; ``named``: the user named this
    path (``--out``), so a link to a directory is theirs to follow."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        st = os.stat(path) if named else os.lstat(path)
    except OSError as e:
        raise _failed(path, e, "cannot create the directory") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _refused(path, LINK if stat.S_ISLNK(st.st_mode) else "is not a directory")
    return path


def backup(path: Path, move: bool = False) -> Path | None:
    """Keep ``path`` as ``<name>.<unix time>.<n>.bak`` (n makes two backups in one second distinct;
    an existing name is never replaced). ``move`` takes ``path`` away (a fresh sweep starts an empty
    file); otherwise it stays, to be replaced next (a rewrite). None when it is missing or empty."""
    check_destination(path)
    try:
        if not path.exists() or not path.stat().st_size:
            return None
        stamp = int(time.time())
        for n in range(1 << 16):
            dst = path.with_name(f"{path.name}.{stamp}.{n}.bak")
            try:
                _link_or_copy(path, dst)
            except FileExistsError:
                continue
            if move:
                os.unlink(path)
            return dst
    except OSError as e:
        raise _failed(path, e, "cannot keep a backup") from None
    raise GgufprofError(f"{path}: cannot keep a backup: too many backups named {path.name}.{stamp}.*.bak")


def _link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a new name of ``src`` (FileExistsError when ``dst`` exists, a link included)."""
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)  # no hard links here: copy
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        shutil.copyfileobj(f, out)
        out.flush()
        os.fsync(out.fileno())
