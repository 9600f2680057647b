"""Results on disk: the one home for reading and writing ``results.jsonl`` (pure).

* Writes are whole lines: each record is one ``os.write`` of a complete line to a file opened
  with ``O_APPEND``, then fsync'd, so a crash or a full disk can at worst leave a torn *last* line.
* Readers never fail on one bad line: a torn, non-JSON or schema-invalid line is reported (with its
  line number) and ignored; ``--resume`` reruns the configuration it held.
* A rewrite (``--recheck``, ``--resume`` dropping failed configurations, ``import`` over old
  results) goes through a temporary file and ``os.replace``, after a backup whose name never
  collides (``results.jsonl.<time>.<n>.bak``).
* One writer per results directory: :class:`ResultsLock` (an ``flock`` on ``OUT/.ggufprof.lock``)
  refuses a second sweep on the same ``--out``.
* Results of one model only: :func:`check_same_model` refuses to mix models by sha256.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from ..errors import GgufprofError
from .schema import Record, flatten, validate

T = TypeVar("T")
RESULTS = "results.jsonl"
LINE_MAX = 64 << 20  # a results line longer than this is not ours (a record is a few KiB)


def results_file(path: str | Path) -> Path:
    p = Path(path)
    f = p / RESULTS if p.is_dir() else p
    if not f.is_file():
        raise GgufprofError(f"{p}: no {RESULTS} here (run `ggufprof sweep MODEL --out {p}` first)")
    return f


def read_jsonl(path: Path, parse: Callable[[dict], T], problems: list[str] | None = None) -> list[T]:
    """The objects ``parse`` makes of a JSONL file's lines; a line that is not JSON, not an object,
    or that ``parse`` refuses (ValueError or TypeError, with the reason) is described in ``problems``."""
    out: list[T] = []
    try:
        f = open(path, "rb")
    except OSError as e:
        raise GgufprofError(f"{path}: cannot read: {e.strerror}") from None
    with f:
        for n, (raw, complete) in enumerate(_lines(f), 1):
            if not raw.strip():
                continue
            why = None
            try:
                d = json.loads(raw.decode("utf-8"), parse_constant=_no_nan)
            except (UnicodeDecodeError, ValueError) as e:
                why = "a torn last line (the write was cut off)" if not complete else f"not a JSON record ({e})"
            else:
                if not isinstance(d, dict):
                    why = f"not a record (a JSON {type(d).__name__})"
                else:
                    try:
                        out.append(parse(d))
                    except (TypeError, ValueError) as e:
                        why = str(e)
            if why and problems is not None:
                problems.append(f"{path}:{n}: {why[:300]}; line ignored")
    return out


def _record(d: dict) -> Record:
    if bad := validate(d):
        raise ValueError("; ".join(bad[:3]))
    return Record.from_dict(d)


def read_records(path: Path, problems: list[str] | None = None) -> list[Record]:
    """The valid records of a JSONL file; each line that is not one is described in ``problems``."""
    return read_jsonl(path, _record, problems)


def _lines(f) -> Iterable[tuple[bytes, bool]]:
    """(line, ends with a newline) for each line of a binary file, never holding more than LINE_MAX
    bytes of one line (an absurdly long one is skipped and reported as not JSON)."""
    while True:
        line = f.readline(LINE_MAX + 1)
        if not line:
            return
        if len(line) > LINE_MAX:
            while line and not line.endswith(b"\n"):
                line = f.readline(LINE_MAX)
            yield b"{oversized line}", True
            continue
        yield line.rstrip(b"\n"), line.endswith(b"\n")


def _no_nan(name: str) -> None:
    raise ValueError(f"{name} is not a number a result can hold")


def load_records(path: str | Path, problems: list[str] | None = None) -> list[Record]:
    """Records of a result directory or JSONL file; bad lines go to ``problems`` (or are ignored)."""
    return read_records(results_file(path), problems)


def line_of(rec: Record) -> bytes:
    return (json.dumps(rec.to_dict(), sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def append_record(path: Path, rec: Record) -> None:
    """Append one whole line with one write, and fsync it: a crash loses nothing already measured."""
    append_line(path, line_of(rec))


def append_line(path: Path, data: bytes) -> None:
    """Append one complete line (``data`` ends with a newline) with one write, then fsync."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise GgufprofError(f"{path}: cannot write results: {e.strerror}") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except OSError as e:
        raise GgufprofError(f"{path}: writing a result failed: {e.strerror}") from None
    finally:
        os.close(fd)


def backup(path: Path) -> Path | None:
    """Move ``path`` aside as ``<path>.<unix time>.<n>.bak`` (n makes two backups in one second
    distinct); None when there is nothing to back up."""
    if not path.exists() or not path.stat().st_size:
        return None
    stamp = int(time.time())
    n = 0
    while (dst := path.with_name(f"{path.name}.{stamp}.{n}.bak")).exists():
        n += 1
    path.rename(dst)
    return dst


def rewrite(path: Path, records: Iterable[Record]) -> Path | None:
    """Replace the file with ``records`` (atomically), keeping the old one as a backup."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    tmp.touch()
    for rec in records:
        append_record(tmp, rec)
    kept = backup(path)
    os.replace(tmp, path)
    return kept


class ResultsLock:
    """An exclusive lock on a results directory for as long as a sweep writes to it."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".ggufprof.lock"
        self.fd: int | None = None

    def __enter__(self) -> "ResultsLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise GgufprofError(f"{self.path.parent}: cannot write here: {e.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise GgufprofError(f"{self.path.parent}: another ggufprof sweep (pid {holder}) is writing these results; "
                                "wait for it or use another --out") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def check_same_model(records: list[Record], sha256: str, model_path: Path, where: Path,
                     advice: str = "use another --out") -> None:
    """Refuse results of another model file than ``model_path`` (the sha256 decides), naming both."""
    other = {r.model.get("sha256") for r in records if r.model.get("sha256")} - {sha256}
    if other:
        first = next(r.model for r in records if r.model.get("sha256") == sorted(other)[0])
        raise GgufprofError(f"{where} holds results of another model ({first.get('path') or first.get('name')}, sha256 "
                            f"{sorted(other)[0][:16]}…), not of {model_path} (sha256 {sha256[:16]}…): {advice}")


def refuse_overwrite(output: Path | None, inputs: Iterable[str | Path]) -> None:
    """An output file must not be one of the inputs it is made from (or their results.jsonl)."""
    if output is None:
        return
    out = output.resolve()
    for p in inputs:
        p = Path(p)
        for candidate in (p, p / RESULTS, p / "results.csv"):
            if candidate.resolve() == out:
                raise GgufprofError(f"{output} is an input of this command: write the output elsewhere")


def write_csv(jsonl: Path, csv_path: Path) -> None:
    """results.csv: one flattened row per record (dotted column names), for pandas or a spreadsheet."""
    import csv

    rows = [flatten(r.to_dict()) for r in read_records(jsonl)] if jsonl.exists() else []
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    try:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(rows)
    except OSError as e:
        raise GgufprofError(f"{csv_path}: cannot write: {e.strerror}") from None


def load_dataframe(*paths: str | Path):
    """All records of one or more result directories (or JSONL files) as a pandas DataFrame.

    Columns are the flattened record (``settings.ctx_size``, ``measured.tg.tps_mean``, ...) plus
    ``source`` (the directory it came from); raw samples stay lists."""
    import pandas as pd

    rows = []
    for p in paths:
        for rec in load_records(p):
            row = flatten(rec.to_dict())
            for key in ("measured.pp.samples_tps", "measured.tg.samples_tps", "measured.pp.samples_s",
                        "measured.tg.samples_s"):
                if key in row:
                    row[key] = json.loads(row[key])
            row["source"] = str(p)
            rows.append(row)
    return pd.DataFrame(rows)
