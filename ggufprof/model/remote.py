"""A model named by a URL or a Hugging Face repository (llama.cpp's ``-hf``), made a local path.

``inspect``, ``estimate`` (``--total`` too) and ``fit`` need only the GGUF header: it is fetched with
HTTP range requests (the first 64 KiB, then read-ahead blocks doubling up to 4 MiB, until
:func:`.gguf_reader.header_size` has walked to the start of the tensor data), kept in a header
cache keyed by URL and ETag, and laid out as a *stand-in*: a sparse file of the model's full size
whose first bytes are the header, in a temporary directory, under the remote file's own name (so a
split model's shards sit side by side as llama.cpp looks for them). ggml's parser and llama.cpp's
dry run read the stand-in as they read the real file: neither touches tensor data.

``sweep`` and ``quality`` run the weights: the whole file is downloaded where llama.cpp's own tools
keep it, with llama.cpp's naming, so both share downloads (common/arg.cpp ``get_default_local_path``,
common/download.cpp, common/hf-cache.cpp):

* a URL (llama.cpp's ``-mu``): ``fs_get_cache_directory()/<last path segment>`` -- ``LLAMA_CACHE``,
  else ``$XDG_CACHE_HOME/llama.cpp``, else ``~/.cache/llama.cpp`` -- beside it ``<name>.etag``
  (the server's ETag), and while it downloads ``<name>.downloadInProgress``, resumed from its size;
* ``-hf user/repo[:quant]`` (``--hf-file``): the Hugging Face cache layout, in ``LLAMA_CACHE``, else
  ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``$HF_HOME/hub``, ``$XDG_CACHE_HOME/huggingface/hub``,
  ``~/.cache/huggingface/hub``: ``models--user--repo/blobs/<sha256>`` (partial:
  ``.downloadInProgress``), ``snapshots/<commit>/<file>`` a relative link to the blob,
  ``refs/main`` the commit.

Libraries: ``huggingface_hub`` resolves repositories (``HfApi``: the refs and file tree llama.cpp
asks for), finds the token (``HF_TOKEN``, ``HUGGING_FACE_HUB_TOKEN`` or ``huggingface-cli login``'s
file) and its HTTP library, ``requests``, does the range reads and downloads. Its own
downloader is not used: ``hf_hub_download`` keeps partial files under another name than llama.cpp
(``.incomplete``) and ``http_get`` writes in 10 MB pieces (a bar that moves by 10 MB, a resume that
loses up to 10 MB); fsspec's HTTP files are not used either: they take a 200 answer to a range
request from offset 0 without a word, where the status is what tells a server without range
support (200) from one with it (206).
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ..errors import GgufprofError
from .gguf_reader import header_size

HEADER_BLOCK = 64 << 10  # the first range read: most headers of small models fit
HEADER_BLOCK_MAX = 4 << 20  # read-ahead doubles up to this (a 262k-token vocabulary is ~16 MB of header)
HEADER_MAX = 1 << 30  # a header this large is a corrupt count, not a model
TIMEOUT = (10, 60)  # seconds to connect, to wait for bytes
DEFAULT_QUANTS = ("Q4_K_M", "Q8_0")  # common/download.cpp find_best_model, when -hf names no quant
PARTIAL = ".downloadInProgress"  # llama.cpp's suffix of a file being downloaded
DOWNLOAD_ATTEMPTS = 3  # download.cpp: max_attempts
DOWNLOAD_CHUNK = 256 << 10
SPLIT = re.compile(r"^(.+)-([0-9]{5})-of-([0-9]{5})$", re.I)  # download.cpp get_gguf_split_info
SHA256 = re.compile(r"[0-9a-f]{64}")


class Progress(Protocol):
    """What a download reports to (the CLI draws a bar; None draws nothing)."""

    def start(self, name: str, total: int, done: int) -> None: ...
    def update(self, n: int) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True)
class HfRepo:
    """llama.cpp's ``-hf user/repo[:quant]`` with ``--hf-file`` (common/download.cpp
    ``common_download_split_repo_tag``): the quant tag picks the file unless the file is named."""

    repo: str
    tag: str = ""
    file: str | None = None

    @classmethod
    def parse(cls, hf_repo: str, hf_file: str | None = None) -> "HfRepo":
        repo, _, tag = hf_repo.partition(":")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise GgufprofError(f"--hf-repo '{hf_repo}': expected <user>/<model>[:quant]")
        return cls(repo, tag.rpartition(":")[2], hf_file or None)

    def __str__(self) -> str:
        return self.repo + (f":{self.tag}" if self.tag else "") + (f" ({self.file})" if self.file else "")


@dataclass(frozen=True)
class Origin:
    """Where a model read over the network came from (``ModelInfo.origin``)."""

    ref: str | HfRepo  # what the user named: a URL or a repository
    url: str  # the URL of the file loaded (the first shard of a split model)
    header_only: bool  # the local path is a stand-in holding only the header

    def to_dict(self) -> dict:
        return {"url": self.url, **({"hf_repo": str(self.ref)} if isinstance(self.ref, HfRepo) else {})}


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch and where llama.cpp keeps it whole."""

    url: str
    name: str  # the file name (a stand-in is laid out under it)
    cache_path: Path  # the whole file in llama.cpp's cache
    sha256: str | None = None  # the hub's LFS oid, when it is one
    snapshot: Path | None = None  # hub: snapshots/<commit>/<path>, the link llama.cpp loads
    commit: str | None = None  # hub: the commit the URL names (its files never change)
    repo_dir: Path | None = None  # hub: models--user--repo


def is_url(model: object) -> bool:
    return isinstance(model, str) and model.lower().startswith(("http://", "https://"))


def model_argument(model: str | None, hf_repo: str | None = None, hf_file: str | None = None) -> str | Path | HfRepo:
    """The CLI's MODEL argument with ``-hf``/``--hf-file``: a local path, a URL or a repository."""
    if hf_file and not hf_repo:
        raise GgufprofError("--hf-file needs --hf-repo USER/REPO")
    if hf_repo:
        if model:
            raise GgufprofError(f"give MODEL or --hf-repo, not both (got '{model}' and '{hf_repo}')")
        return HfRepo.parse(hf_repo, hf_file)
    if not model:
        raise GgufprofError("missing MODEL: a GGUF file, an http(s):// URL, or --hf-repo USER/REPO[:QUANT]")
    return model if is_url(model) else Path(model)


def resolve_model(model: str | Path | HfRepo, *, whole: bool = False,
                  progress: Progress | None = None) -> tuple[Path, Origin | None]:
    """The local path to read ``model`` from, and where it came from (None for a local file).

    ``whole=False``: only headers are fetched (a stand-in); ``whole=True``: every file is downloaded
    into llama.cpp's cache (or found there)."""
    if isinstance(model, HfRepo):
        files = hf_files(model)
        first = files[0]
    elif is_url(model):
        files = url_files(str(model))
        first = next(f for f in files if f.url == model)
    else:
        return Path(model), None
    with _Session() as s:
        if whole:
            for f in files:
                _download(s, f, progress)
            path = first.snapshot or first.cache_path
        else:
            directory = _standin_dir()
            for f in files:
                _standin(s, f, directory)
            path = directory / first.name
    return path, Origin(model, first.url, not whole)


# --- where llama.cpp keeps things ---

def _env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None


def _cache_home() -> Path:
    return _env_path("XDG_CACHE_HOME") or Path.home() / ".cache"


def llama_cache_dir() -> Path:
    """common/common.cpp ``fs_get_cache_directory`` (Linux): LLAMA_CACHE, else XDG_CACHE_HOME/llama.cpp."""
    return _env_path("LLAMA_CACHE") or _cache_home() / "llama.cpp"


def hf_cache_dir() -> Path:
    """common/hf-cache.cpp ``get_cache_directory``: where ``-hf`` downloads go."""
    for var, sub in (("LLAMA_CACHE", ""), ("HF_HUB_CACHE", ""), ("HUGGINGFACE_HUB_CACHE", ""), ("HF_HOME", "hub")):
        if base := _env_path(var):
            return base / sub if sub else base
    return _cache_home() / "huggingface" / "hub"


def header_cache_dir() -> Path:
    return _cache_home() / "ggufprof" / "headers"


def model_endpoint() -> str:
    """common/common.cpp ``common_get_model_endpoint``: MODEL_ENDPOINT, else HF_ENDPOINT, else the hub."""
    endpoint = os.environ.get("MODEL_ENDPOINT") or os.environ.get("HF_ENDPOINT") or "https://huggingface.co/"
    return endpoint if endpoint.endswith("/") else endpoint + "/"


def _split_info(name: str) -> tuple[str, int, int] | None:
    """(prefix, index, count) of ``prefix-00001-of-00003.gguf``; None for a whole model."""
    if not name.lower().endswith(".gguf"):
        return None
    m = SPLIT.match(name[:-5])
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def url_files(url: str) -> list[RemoteFile]:
    """A URL and, for a shard of a split model, every shard (download.cpp ``common_download_get_all_parts``),
    each cached under its last path segment (arg.cpp ``get_default_local_path``)."""
    base = url.split("#")[0].split("?")[0]
    split = _split_info(base)
    urls = [url] if split is None or split[2] <= 1 else \
        [f"{split[0]}-{i:05d}-of-{split[2]:05d}.gguf" for i in range(1, split[2] + 1)]
    files = []
    for u in urls:
        name = unquote(u.split("#")[0].split("?")[0].rstrip("/").rsplit("/", 1)[-1])
        if not name or name in (".", ".."):
            raise GgufprofError(f"{url}: the URL names no file")
        files.append(RemoteFile(u, name, llama_cache_dir() / name))
    return files


# --- -hf: a repository's files, as llama.cpp picks them ---

def hf_files(ref: HfRepo) -> list[RemoteFile]:
    """The file ``-hf`` loads (every shard of a split model), as common/download.cpp
    ``common_download_get_hf_plan`` picks it: ``--hf-file`` exactly, else the first model file whose
    name has the quant tag followed by ``.`` or ``-`` (case-insensitive; default Q4_K_M, then Q8_0,
    then the first model file), never an mmproj/imatrix/mtp file nor a later shard."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=model_endpoint().rstrip("/"))
    with _hub_errors(ref):
        branches = api.list_repo_refs(ref.repo).branches
        branch = next((b for b in branches if b.name == "main"), branches[0] if branches else None)
        if branch is None:
            raise GgufprofError(f"{ref.repo}: the repository has no branch to read")
        files = [f for f in api.list_repo_tree(ref.repo, revision=branch.target_commit, recursive=True)
                 if isinstance(f, RepoFile)]
    paths = [f.path for f in files]
    primary = ref.file if ref.file in paths else None if ref.file else _best_model(paths, ref.tag)
    if primary is None:
        ggufs = ", ".join(p for p in paths if p.endswith(".gguf")) or "none"
        what = f"file '{ref.file}'" if ref.file else f"GGUF file for quant '{ref.tag}'" if ref.tag else "GGUF model file"
        raise GgufprofError(f"{ref.repo}: no {what} in the repository (GGUF files: {ggufs})")
    split = _split_info(primary)
    shards = [p for p in paths if split and (s := _split_info(p)) and s[0] == split[0] and s[2] == split[2]]
    by_path = {f.path: f for f in files}
    return [_hub_file(ref.repo, branch.target_commit, by_path[p]) for p in sorted(shards or [primary])]


def _is_model_file(path: str) -> bool:
    """download.cpp ``gguf_filename_is_model``: a GGUF that is not a projector, imatrix or draft head."""
    name = path.rsplit("/", 1)[-1]
    return path.endswith(".gguf") and not any(k in name for k in ("mmproj", "imatrix", "mtp-", "eagle3-",
                                                                  "dflash-", "dspark-"))


def _best_model(paths: list[str], tag: str) -> str | None:
    """download.cpp ``find_best_model``."""
    firsts = [p for p in paths if _is_model_file(p) and (_split_info(p) or ("", 1, 1))[1] == 1]
    for t in [tag] if tag else DEFAULT_QUANTS:
        pattern = re.compile(re.escape(t) + r"[.-]", re.I)
        if match := next((p for p in firsts if pattern.search(p)), None):
            return match
    return None if tag else next(iter(firsts), None)


def _hub_file(repo: str, commit: str, f) -> RemoteFile:
    """hf-cache.cpp ``get_repo_files``: the URL at the commit, the blob named by its oid."""
    oid = f.lfs.sha256 if f.lfs else f.blob_id
    if oid and not re.fullmatch(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}", oid):  # hf-cache.cpp is_valid_oid
        raise GgufprofError(f"{repo}: refusing the file '{f.path}': its oid '{oid}' is not a hash")
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit / f.path
    if not snapshot.resolve().is_relative_to((root / "snapshots" / commit).resolve()):
        raise GgufprofError(f"{repo}: refusing the file path '{f.path}' (it leaves the repository)")
    return RemoteFile(f"{model_endpoint()}{repo}/resolve/{commit}/{f.path}", f.path.rsplit("/", 1)[-1],
                      root / "blobs" / oid if oid else snapshot, f.lfs.sha256 if f.lfs else None, snapshot, commit,
                      root)


@contextmanager
def _hub_errors(ref: HfRepo):
    """huggingface_hub's HTTP errors as one line the user can act on."""
    import requests

    try:
        yield
    except requests.RequestException as e:
        response = getattr(e, "response", None)
        if response is not None:
            raise GgufprofError(_status_message(f"{model_endpoint()}{ref.repo}", response.status_code,
                                                response.reason)) from None
        raise GgufprofError(_network_message(model_endpoint(), e)) from None


# --- HTTP ---

def _is_hub(url: str) -> bool:
    return urlsplit(url).netloc == urlsplit(model_endpoint()).netloc


def _status_message(url: str, status: int, reason: str = "") -> str:
    if status == 404:
        return f"{url}: not found (404)"
    if status in (401, 403):
        if _is_hub(url):
            return (f"{url}: authentication required ({status}): set HF_TOKEN to a Hugging Face token with access "
                    "to this repository (or log in with `huggingface-cli login`)")
        return (f"{url}: authentication required ({status}); ggufprof sends a token (HF_TOKEN) only to the model "
                f"endpoint {model_endpoint()} (MODEL_ENDPOINT / HF_ENDPOINT)")
    return f"{url}: the server answered {status} {reason}".rstrip()


def _network_message(url: str, exc: Exception) -> str:
    import requests

    host = urlsplit(url).netloc
    if isinstance(exc, requests.Timeout):
        return f"{url}: {host} did not answer in time (network down or server overloaded?)"
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.exceptions.ChunkedEncodingError):
        why = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
        return f"{url}: {why} to {host}: is the network up and the address right?"
    return f"{url}: the server closed the connection before the whole answer arrived; try again"


class _Session:
    """A ``requests`` session; huggingface_hub's headers (its token, ``HF_TOKEN`` first) for the model
    endpoint only -- a token is never sent to another host, whatever llama.cpp does -- and errors as
    one line. (huggingface_hub is imported only for the endpoint: its import is ~0.3 s.)"""

    def __enter__(self) -> "_Session":
        import requests

        self.session = requests.Session()
        return self

    def __exit__(self, *exc) -> None:
        self.session.close()

    def headers(self, url: str) -> dict[str, str]:
        from .. import __version__

        if not _is_hub(url):
            return {"User-Agent": f"ggufprof/{__version__}"}
        from huggingface_hub.utils import build_hf_headers

        return build_hf_headers(library_name="ggufprof", library_version=__version__)

    def request(self, method: str, url: str, **kw):
        import requests

        try:
            r = self.session.request(method, url, headers={**self.headers(url), **kw.pop("headers", {})},
                                     timeout=TIMEOUT, allow_redirects=True, **kw)
        except requests.RequestException as e:
            raise GgufprofError(_network_message(url, e)) from None
        if r.status_code >= 400:
            r.close()
            raise GgufprofError(_status_message(url, r.status_code, r.reason))
        return r

    def head(self, url: str, etag: str | None = None) -> "_Head":
        r = self.request("HEAD", url, headers={"If-None-Match": etag} if etag else {})
        h = r.headers
        linked = h.get("X-Linked-Etag")
        return _Head(r.status_code, int(h.get("X-Linked-Size") or h.get("Content-Length") or -1),
                     linked or h.get("ETag") or (f"lm:{h['Last-Modified']}" if h.get("Last-Modified") else None),
                     h.get("Accept-Ranges", "").lower() != "none")

    def range(self, url: str, start: int, end: int) -> bytes:
        """Bytes [start, end) in one range request; a 200 answer means the server ignores ranges."""
        import requests

        r = self.request("GET", url, headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"},
                         stream=True)
        with r:
            if r.status_code != 206 or not r.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
                raise _no_ranges(url)
            try:
                data = b"".join(r.iter_content(1 << 16))
            except requests.RequestException:
                data = None
        if data is None or len(data) != end - start:
            raise GgufprofError(f"{url}: the server closed the connection in the middle of the header "
                                f"(bytes {start}-{end - 1}); try again")
        return data


@dataclass(frozen=True)
class _Head:
    status: int
    size: int
    etag: str | None  # the validator the header cache is keyed by (ETag, else Last-Modified)
    ranges: bool

    def sha256(self) -> str | None:
        """The hub's X-Linked-Etag / ETag is the file's sha256 for LFS files."""
        tag = (self.etag or "").removeprefix("W/").strip('"').lower()
        return tag if SHA256.fullmatch(tag) else None


def _no_ranges(url: str) -> GgufprofError:
    return GgufprofError(f"{url}: the server does not support range requests, so the header cannot be read "
                         f"alone; download the whole file with `ggufprof download {url}` (into llama.cpp's cache, "
                         "where later commands find it)")


# --- headers and stand-ins ---

_standin_dirs: list[str] = []


def _standin_dir() -> Path:
    """A directory for this process's stand-ins, removed when it exits (the dry-run worker reads them)."""
    d = tempfile.mkdtemp(prefix="ggufprof-header-")
    if not _standin_dirs:
        atexit.register(lambda: [shutil.rmtree(x, ignore_errors=True) for x in _standin_dirs])
    _standin_dirs.append(d)
    return Path(d)


def _standin(s: _Session, f: RemoteFile, directory: Path) -> None:
    """``directory/<name>``: the header bytes, then a hole to the file's full size (written, then
    truncated: sparse); or a link to the whole file when llama.cpp's cache holds it."""
    target = directory / f.name
    whole = _cached_whole(s, f)
    if whole is not None:
        target.symlink_to(whole.resolve())
        return
    prefix, size = _header(s, f.url)
    with open(target, "xb") as out:
        out.write(prefix)
        out.truncate(size)


def _cached_whole(s: _Session, f: RemoteFile) -> Path | None:
    """The whole file in llama.cpp's cache, when it is there and current, by llama.cpp's rules
    (download.cpp ``common_download_file_single_online``): a hub blob at a commit never changes; a
    URL's file stands unless the server now gives another ETag than the one stored beside it, or
    the server cannot be asked."""
    if f.commit is not None:
        return next((p for p in (f.snapshot, f.cache_path) if p is not None and p.is_file()), None)
    if not f.cache_path.is_file():
        return None
    try:
        head = s.head(f.url)
    except GgufprofError:
        return f.cache_path  # llama.cpp: "using cached file (HEAD failed)"
    stored = _read_text(Path(str(f.cache_path) + ".etag"))
    return f.cache_path if not head.etag or stored == head.etag else None


def _header(s: _Session, url: str) -> tuple[bytes, int]:
    """(header bytes, file size): from the header cache when the server's ETag still matches (the
    check is a HEAD with If-None-Match: a 304, no body), else by range reads."""
    key = hashlib.sha256(url.encode()).hexdigest()[:32]
    meta_path, data_path = header_cache_dir() / f"{key}.json", header_cache_dir() / f"{key}.bin"
    meta = _read_json(meta_path)
    head = s.head(url, meta.get("etag") if meta.get("url") == url else None)
    if head.status == 304 or (head.etag and meta.get("etag") == head.etag and meta.get("size") == head.size):
        data = _read_bytes(data_path)
        if meta.get("url") == url and data is not None and len(data) == meta.get("header_size"):
            return data, meta["size"]
        head = s.head(url)  # the cache entry is unusable: ask again for the size
    if not head.ranges:
        raise _no_ranges(url)
    if head.size < 0:
        raise GgufprofError(f"{url}: the server does not say how large the file is (no Content-Length)")
    data = _fetch_header(s, url, head.size)
    if head.etag:
        _write_atomic(data_path, data)
        _write_atomic(meta_path, json.dumps({"url": url, "etag": head.etag, "size": head.size,
                                             "header_size": len(data)}).encode())
    return data, head.size


def _fetch_header(s: _Session, url: str, size: int) -> bytes:
    """The bytes up to the tensor data: range reads that grow until the header's walk ends."""
    buf = bytearray()
    block = HEADER_BLOCK

    def need(end: int) -> bytearray:
        nonlocal block
        while len(buf) < end:
            if end > min(size, HEADER_MAX):
                raise GgufprofError(f"not a GGUF model, or a truncated or corrupt one (its header would run "
                                    f"past {min(size, HEADER_MAX)} bytes)")
            stop = min(size, max(end, len(buf) + block))
            buf.extend(s.range(url, len(buf), stop))
            block = min(2 * block, HEADER_BLOCK_MAX)
        return buf

    try:
        n = header_size(need)
    except GgufprofError as e:
        raise e if str(e).startswith(url) else GgufprofError(f"{url}: {e}") from None
    return bytes(buf[:n])


# --- whole files ---

def _download(s: _Session, f: RemoteFile, progress: Progress | None) -> None:
    """``f`` whole in llama.cpp's cache (unless it is there and current): resumed from a partial
    file, checked against the announced size and the server's sha256, renamed into place."""
    if _cached_whole(s, f) is None:
        head = s.head(f.url)
        _fetch_whole(s, f, head, progress)
        if f.commit is None and head.etag and not head.etag.startswith("lm:"):
            _write_atomic(Path(str(f.cache_path) + ".etag"), head.etag.encode())  # download.cpp write_etag
    if f.commit is not None:
        _finish_hub(f)


def _fetch_whole(s: _Session, f: RemoteFile, head: _Head, progress: Progress | None) -> None:
    """Into ``<file>.downloadInProgress`` (llama.cpp's partial file: either tool resumes the other's),
    locked against a second download, then checked and renamed to its name."""
    part = Path(str(f.cache_path) + PARTIAL)
    part.parent.mkdir(parents=True, exist_ok=True)
    expected = f.sha256 or head.sha256()
    with open(part, "ab") as out:
        try:
            fcntl.flock(out, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise GgufprofError(f"{part}: another download of this file is running") from None
        if head.size >= 0 and out.tell() > head.size:  # not a prefix of this file: start again
            out.truncate(0)
        bar = _Bar(progress, f.name, head.size, out.tell())
        try:
            for attempt in range(DOWNLOAD_ATTEMPTS):
                if head.size >= 0 and out.tell() == head.size or _stream(s, f.url, out, bar, attempt):
                    break
        finally:
            bar.stop()
        got = out.tell()
    if head.size >= 0 and got != head.size:
        raise GgufprofError(f"{f.url}: downloaded {got} bytes, the server announced {head.size}; the partial file "
                            "is kept: run again to resume")
    if expected and sha256_file(part) != expected:
        part.unlink()
        raise GgufprofError(f"{f.url}: the download's sha256 differs from the server's ({expected[:16]}…); "
                            "the partial file was removed, run again")
    os.replace(part, f.cache_path)


def _stream(s: _Session, url: str, out, bar: "_Bar", attempt: int) -> bool:
    """Append the rest of the file to ``out`` (a Range from its size, as download.cpp ``common_pull_file``);
    False when the connection broke and another attempt should resume (the last one says why)."""
    import requests

    start = out.tell()
    r = s.request("GET", url, headers={"Range": f"bytes={start}-", "Accept-Encoding": "identity"} if start else
                  {"Accept-Encoding": "identity"}, stream=True)
    with r:
        if start and r.status_code != 206:  # the server ignored the Range: start again from the beginning
            out.seek(0)
            out.truncate()
            bar.restart()
        try:
            for chunk in r.iter_content(DOWNLOAD_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        except requests.RequestException as e:
            out.flush()
            if attempt + 1 == DOWNLOAD_ATTEMPTS:
                raise GgufprofError(_network_message(url, e) + f" ({out.tell()} bytes so far are kept in "
                                    f"{Path(out.name).name}: run again to resume)") from None
            time.sleep(2 ** attempt)  # download.cpp: retry after 2, then 4 seconds
            return False
    out.flush()
    return True


def _finish_hub(f: RemoteFile) -> None:
    """hf-cache.cpp ``finalize_file`` (a relative link snapshots/<commit>/<path> -> blobs/<oid>) and
    ``get_repo_commit`` (refs/main holds the commit)."""
    assert f.snapshot is not None and f.commit is not None and f.repo_dir is not None
    if f.snapshot != f.cache_path and not f.snapshot.is_symlink() and not f.snapshot.exists():
        f.snapshot.parent.mkdir(parents=True, exist_ok=True)
        f.snapshot.symlink_to(os.path.relpath(f.cache_path, f.snapshot.parent))
    _write_atomic(f.repo_dir / "refs" / "main", f.commit.encode())


class _Bar:
    """A download's progress, to the caller's Progress when there is one."""

    def __init__(self, progress: Progress | None, name: str, total: int, done: int):
        self.progress, self.name, self.total = progress, name, total
        if progress is not None:
            progress.start(name, total, done)

    def restart(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress.start(self.name, self.total, 0)

    def update(self, n: int) -> None:
        if self.progress is not None:
            self.progress.update(n)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


# --- small file helpers ---

def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """A file's sha256, read in 4 MiB blocks (a model may be larger than memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a temporary file beside ``path`` and rename it: nothing half-written is ever seen."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_text(path: Path) -> str | None:
    data = _read_bytes(path)
    return data.decode("utf-8", "replace").strip() if data is not None else None


def _read_json(path: Path) -> dict:
    data = _read_bytes(path)
    try:
        obj = json.loads(data) if data else {}
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}
