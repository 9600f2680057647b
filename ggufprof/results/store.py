"""Results on disk: the one home for reading and writing ``results.jsonl`` (pure).

* Writes are whole lines: each record is one ``os.write`` of a complete line to a file opened
  with ``O_APPEND``, then fsync'd, so a crash or a full disk can at worst leave a torn *last* line
  (the next append starts a new line). Every file goes through results/files.py: nothing is written
  through a symbolic link, and a whole file is replaced atomically.
* Readers stream the file (one line in memory at a time) and never fail on one bad line: a torn,
  non-JSON line, a record of a newer schema or one whose fields have the wrong shape
  (schema.validate) is described with its line number and skipped. A reader may keep only the
  fields it shows (``keep``): 100,000 records then fit in a few hundred MiB.
* A rewrite (``--recheck``, ``--resume`` dropping failed configurations, ``import`` over old
  results) goes through a temporary file and ``os.replace``, after a backup whose name never
  collides (``results.jsonl.<time>.<n>.bak``); lines it cannot read are copied as they are, never
  dropped.
* One writer per results directory: :class:`ResultsLock` (an ``flock`` on ``OUT/.ggufprof.lock``)
  refuses a second sweep on the same ``--out``.
* Results of one model only: :func:`check_same_model` refuses to mix models by sha256.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

from ..errors import GgufprofError
from . import files
from .schema import Record, flatten, validate

RESULTS = "results.jsonl"
LINE_MAX = 64 << 20  # a results line longer than this is not ours (a record is a few KiB)
T = TypeVar("T")
# Blocks that records of a directory often hold alike: one copy of each distinct value when projected
# (readers never modify a record). 100,000 records of a report then fit in less than 1 GiB.
SHARED = ("env", "model", "check", "predicted", "quality")


def results_file(path: str | Path) -> Path:
    p = Path(path)
    f = p / RESULTS if p.is_dir() else p
    if not f.is_file():
        raise GgufprofError(f"{p}: no {RESULTS} here (run `ggufprof sweep MODEL --out {p}` first)")
    return f


@dataclass(frozen=True)
class Unreadable:
    """A line this ggufprof cannot read (torn, not JSON, a newer schema, a wrong shape): where it is,
    so that a rewrite copies it as it is."""

    line: int
    offset: int
    length: int


def read_lines(path: Path, problems: list[str] | None = None, keep: Iterable[str] | None = None
               ) -> Iterator[Record | Unreadable]:
    """Each line of a results file, in order: a Record, or an Unreadable described in ``problems``
    (with its line number). ``keep``: dotted fields to keep (``"measured.rss"``; id, status and
    reason always are); the others are dropped after validation, to hold less."""
    tree = _tree(keep) if keep is not None else None
    shared: dict[bytes, dict] = {}
    with _open(path) as f:
        for n, offset, raw, complete in _lines(f):
            if raw is not None and not raw.strip():
                continue
            d, why = _record(raw, complete)
            if d is None:
                if problems is not None:
                    problems.append(f"{path}:{n}: {why[:300]}; line skipped")
                yield Unreadable(n, offset, f.tell() - offset)
                continue
            yield Record.from_dict(d) if tree is None else _projected(d, tree, shared)


def read_records(path: Path, problems: list[str] | None = None, keep: Iterable[str] | None = None) -> list[Record]:
    """The valid records of a JSONL file; each line that is not one is described in ``problems``."""
    with no_gc():
        return [x for x in read_lines(path, problems, keep) if isinstance(x, Record)]


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
    """Python's cycle collector off while many records are read: records hold no cycles, and each
    collection would walk every object read so far (~40 % of the time of 100,000 records)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _json_object(raw: bytes | None, complete: bool) -> tuple[dict | None, str]:
    """(the JSON object of a line, "") or (None, why it is not one)."""
    if raw is None:
        return None, f"longer than {LINE_MAX >> 20} MiB: not a record"
    try:
        d = orjson.loads(raw)  # refuses NaN, Infinity and numbers that overflow a double
    except orjson.JSONDecodeError as e:
        return None, "a torn last line (the write was cut off)" if not complete else f"not a JSON record ({e})"
    if not isinstance(d, dict):
        return None, f"not a record (a JSON {type(d).__name__})"
    return d, ""


def _record(raw: bytes | None, complete: bool) -> tuple[dict | None, str]:
    """(the record dict, "") or (None, why it cannot be read)."""
    d, why = _json_object(raw, complete)
    if d is None:
        return None, why
    bad = validate(d)
    return (None, "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")) if bad else (d, "")


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as e:
        raise GgufprofError(f"{path}: cannot read: {e.strerror}") from None


def read_jsonl(path: Path, parse: Callable[[dict], T], problems: list[str] | None = None) -> list[T]:
    """The objects ``parse`` makes of a JSONL file's lines (speedup.jsonl, ...), streamed like
    results.jsonl; a line that is not JSON, not an object, or that ``parse`` refuses (ValueError or
    TypeError, with the reason) is described in ``problems`` with its line number and skipped."""
    out: list[T] = []
    with _open(path) as f:
        for n, _, raw, complete in _lines(f):
            if raw is not None and not raw.strip():
                continue
            d, why = _json_object(raw, complete)
            if d is not None:
                try:
                    out.append(parse(d))
                    continue
                except (TypeError, ValueError) as e:
                    why = str(e)
            if problems is not None:
                problems.append(f"{path}:{n}: {why[:300]}; line skipped")
    return out


def _lines(f) -> Iterator[tuple[int, int, bytes | None, bool]]:
    """(line number, offset, line or None when longer than LINE_MAX, ends with a newline) for each
    line of a binary file, never holding more than LINE_MAX bytes of one line."""
    n = 0
    while True:
        n += 1
        offset = f.tell()
        line = f.readline(LINE_MAX + 1)
        if not line:
            return
        if len(line) > LINE_MAX:
            while line and not line.endswith(b"\n"):
                line = f.readline(LINE_MAX)
            yield n, offset, None, True
            continue
        yield n, offset, line.rstrip(b"\n"), line.endswith(b"\n")


def _tree(keep: Iterable[str]) -> dict:
    """Dotted paths as a tree: {"measured": {"rss": True}, "settings": True, ...}."""
    tree: dict = {"schema_version": True, "id": True, "status": True, "reason": True}
    for path in keep:
        node = tree
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if node is True:
                break
        else:
            node[last] = True
    return tree


def _projected(d: dict, tree: dict, shared: dict[bytes, dict]) -> Record:
    out = _project(d, tree)
    for key in SHARED:  # a block alike in many records (the host's environment, ...): held once
        if isinstance(out.get(key), dict):
            out[key] = shared.setdefault(orjson.dumps(out[key], option=orjson.OPT_SORT_KEYS), out[key])
    return Record.from_dict(out)


def _project(d: dict, tree: dict) -> dict:
    """The fields of ``d`` in ``tree``; a list of objects keeps the same fields of each."""
    out = {}
    for k, sub in tree.items():
        if k in d:
            v = d[k]
            if sub is True or not isinstance(v, (dict, list)):
                out[k] = v
            else:
                out[k] = _project(v, sub) if isinstance(v, dict) else [
                    _project(x, sub) if isinstance(x, dict) else x for x in v]
    return out


def load_records(path: str | Path, problems: list[str] | None = None, keep: Iterable[str] | None = None
                 ) -> list[Record]:
    """Records of a result directory or JSONL file; bad lines go to ``problems`` (or are ignored)."""
    return read_records(results_file(path), problems, keep)


def line_of(rec: Record) -> bytes:
    return (json.dumps(rec.to_dict(), sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def append_record(path: Path, rec: Record) -> None:
    """Append one whole line with one write, and fsync it: a crash loses nothing already measured."""
    append_line(path, line_of(rec))


def append_line(path: Path, data: bytes) -> None:
    """Append one complete line (``data`` ends with a newline) with one write, then fsync."""
    files.append(path, data)


def rewrite(path: Path, items: Iterable[Record | Unreadable]) -> Path | None:
    """Replace the file with ``items`` (atomically), keeping the old one as a backup: records as
    lines, Unreadable lines copied from the old file as they are (each ending in a newline)."""
    old = None
    try:
        with files.replacing(path, "wb") as out:
            for item in items:
                if isinstance(item, Record):
                    out.write(line_of(item))
                    continue
                old = old or open(path, "rb")
                old.seek(item.offset)
                out.write(old.read(item.length).rstrip(b"\n") + b"\n")
            return files.backup(path)  # a new name of the old file, made before it is replaced
    finally:
        if old is not None:
            old.close()


class ResultsLock:
    """An exclusive lock on a results directory for as long as a sweep writes to it."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".ggufprof.lock"
        self.fd: int | None = None

    def __enter__(self) -> "ResultsLock":
        self.fd = files.open_lock_file(self.path)
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
    """results.csv: one flattened row per record (dotted column names), for pandas or a spreadsheet.
    Two passes over the file (the columns, then the rows), so no more than one record is held."""
    import csv

    def rows() -> Iterator[dict]:
        for item in read_lines(jsonl) if jsonl.exists() else ():
            if isinstance(item, Record):
                yield flatten(item.to_dict())

    cols: dict[str, None] = {}
    for row in rows():
        cols.update(dict.fromkeys(row))
    with files.replacing(csv_path) as f:
        w = csv.DictWriter(f, fieldnames=list(cols))
        w.writeheader()
        w.writerows(rows())


SAMPLE_COLUMNS = ("measured.pp.samples_tps", "measured.tg.samples_tps", "measured.pp.samples_s",
                  "measured.tg.samples_s")


def load_dataframe(*paths: str | Path, columns: Iterable[str] | None = None, problems: list[str] | None = None):
    """All records of one or more result directories (or JSONL files) as a pandas DataFrame.

    Columns are the flattened record (``settings.ctx_size``, ``measured.tg.tps_mean``, ...) plus
    ``source`` (the directory it came from); raw samples stay lists. ``columns``: only these fields
    (those no record has are left out), read without holding the rest. Unreadable lines go to
    ``problems``."""
    import pandas as pd

    keep = list(columns) if columns is not None else None
    data: dict[str, list] = {}
    n = 0
    with no_gc():
        for p in paths:
            for rec in read_lines(results_file(p), problems, keep):  # one record at a time, into columns
                if not isinstance(rec, Record):
                    continue
                row = _flat_row(rec) if keep is None else _picked(rec, keep)
                row["source"] = str(p)
                for key, value in row.items():
                    if key not in data:  # a column no earlier record had
                        data[key] = [None] * n
                    data[key].append(value)
                n += 1
                for col in data.values():  # a column this record lacks
                    if len(col) < n:
                        col.append(None)
    return pd.DataFrame(data)


def _flat_row(rec: Record) -> dict:
    row = flatten({f: getattr(rec, f) for f in Record.__dataclass_fields__})
    for key in SAMPLE_COLUMNS:
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


_MISSING = object()


def _picked(rec: Record, columns: list[str]) -> dict:
    """The record's value of each dotted field it has (what flatten would give for a leaf)."""
    out = {}
    for col in columns:
        top, *rest = col.split(".")
        v = getattr(rec, top, _MISSING)
        for k in rest:
            v = v.get(k, _MISSING) if isinstance(v, dict) else _MISSING
        if v is not _MISSING:
            out[col] = v
    return out
