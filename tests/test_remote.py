"""A model named by a URL or by -hf, against a real web server on 127.0.0.1 (Debian's nginx, `make nginx`).

The test writes an nginx configuration in a temporary directory: the fixtures at /f/, a repository
laid out like the Hugging Face hub (/api/models/{repo}/refs, /api/models/{repo}/tree/{commit},
/{repo}/resolve/{commit}/{file}, for -hf through HF_ENDPOINT), and locations that misbehave as real
servers do (no range support, 401, a wrong checksum, a slow first download). nginx's access log
(bytes sent per request, the Range asked) says what each command transferred. A tiny socket server
that closes in the middle of an answer stands for a dropped connection. Every cache lives in the
test's own XDG_CACHE_HOME.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.model.gguf_reader import read_gguf
from ggufprof.model.remote import HEADER_BLOCK, HfRepo, hf_cache_dir, llama_cache_dir

from .archs_suite import llama_tools_bin
from .conftest import FIXTURES, fixture_path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "test/tiny-GGUF"
PRIVATE = "test/private-GGUF"
TOKEN = "hf_" + "a" * 34
SPLIT = [FIXTURES / "split" / f"llama-gqa-split-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
# the hub repository: file name -> the fixture it serves
HUB_FILES = {
    "mmproj-tiny-Q4_K_M.gguf": fixture_path("deci-varkv"),  # listed first, yet never the model -hf picks
    "tiny-Q8_0.gguf": fixture_path("llama-gqa"),
    "tiny-Q4_K_M.gguf": fixture_path("gemma3-swa"),
    **{f"split/tiny-F16-0000{i}-of-00003.gguf": p for i, p in enumerate(SPLIT, 1)},
}
REQUEST_OVERHEAD = 1024  # an answer's status line and headers, per request, at most


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hub_layout(www: Path) -> None:
    """/api/models/{repo}/refs and .../tree/{commit} as the hub answers them, and the files under
    /{repo}/resolve/{commit}/ (and main)."""
    for repo in (REPO, PRIVATE):
        api = www / "api" / "models" / repo
        (api / "tree").mkdir(parents=True)
        (api / "refs").write_text(json.dumps({"branches": [{"name": "main", "ref": "refs/heads/main",
                                                            "targetCommit": COMMIT}], "converts": [], "tags": []}))
        tree = [{"type": "file", "path": name, "size": p.stat().st_size, "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                 "lfs": {"oid": sha256(p), "size": p.stat().st_size, "pointerSize": 134}} for name, p in HUB_FILES.items()]
        (api / "tree" / COMMIT).write_text(json.dumps([{"type": "file", "path": "README.md", "size": 5, "oid": "0" * 40},
                                                       {"type": "directory", "path": "split", "oid": "1" * 40}] + tree))
        for rev in (COMMIT, "main"):
            for name, p in HUB_FILES.items():
                (www / repo / "resolve" / rev / name).parent.mkdir(parents=True, exist_ok=True)
                (www / repo / "resolve" / rev / name).symlink_to(p)


NGINX_CONF = """
user {user};  # as the test (its temporary directories are private); ignored when not run as root
worker_processes 1;
error_log {root}/error.log;
pid {root}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  log_format ranges '$request_method $uri "$http_range" $status $bytes_sent $body_bytes_sent';
  access_log {root}/access.log ranges;
  client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
  uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
  default_type application/octet-stream;
  map_hash_bucket_size 256;
  map $http_range $first_try_rate {{ "" 200k; default 0; }}
  map $uri $linked_etag {{ {linked} }}
  server {{
    listen 127.0.0.1:{port};
    root {root}/www;
    location /f/ {{ }}
    location /api/ {{ default_type application/json; }}
    location /{repo}/ {{ add_header X-Repo-Commit {commit}; add_header X-Linked-Etag $linked_etag; }}
    location /api/models/{private}/ {{
      default_type application/json;
      if ($http_authorization != "Bearer {token}") {{ return 401; }}
    }}
    location /{private}/ {{ if ($http_authorization != "Bearer {token}") {{ return 401; }} }}
    location /norange/ {{ alias {fixtures}/; max_ranges 0; }}
    location /auth/ {{ return 401; }}
    location /badsum/ {{ alias {fixtures}/; etag off; add_header ETag '"{zeros}"'; }}
    location /slow/ {{ alias {fixtures}/; limit_rate $first_try_rate; }}
  }}
}}
"""


def _head_404(url: str) -> None:
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=10)
    except urllib.error.HTTPError as e:
        assert e.code == 404


class Nginx:
    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (root / "www").mkdir(parents=True)
        (root / "tmp").mkdir()
        (root / "www" / "f").symlink_to(FIXTURES)
        hub_layout(root / "www")
        linked = " ".join(f'/{r}/resolve/{c}/{n} "\\"{sha256(p)}\\"";' for r in (REPO, PRIVATE)
                          for c in (COMMIT, "main") for n, p in HUB_FILES.items())
        conf = root / "nginx.conf"
        conf.write_text(NGINX_CONF.format(root=root, port=self.port, repo=REPO, private=PRIVATE, commit=COMMIT,
                                          token=TOKEN, fixtures=FIXTURES, zeros="0" * 64, linked=linked,
                                          user=getpass.getuser()))
        self.proc = subprocess.Popen([NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(100):
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx did not start: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)

    def log(self) -> list[dict]:
        """The access log of every request answered so far, one dict per request. nginx writes a line
        when it has sent the answer, which the client may have read already: a marker request, answered
        after them by the one worker, is waited for, and left out."""
        self.markers = getattr(self, "markers", 0) + 1
        marker = f"/marker-{self.markers}"
        _head_404(self.url + marker)
        for _ in range(200):
            rows = [self._row(line) for line in (self.root / "access.log").read_text().splitlines()]
            if any(r["uri"] == marker for r in rows):
                return [r for r in rows if not r["uri"].startswith("/marker-")]
            time.sleep(0.01)
        raise AssertionError(f"nginx did not log {marker}")

    @staticmethod
    def _row(line: str) -> dict:
        method, uri, rng, status, sent, body = line.split(" ")
        return {"method": method, "uri": uri, "range": rng.strip('"'), "status": int(status), "sent": int(sent),
                "body": int(body)}

    def since(self, n: int) -> list[dict]:
        return self.log()[n:]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def nginx(tmp_path_factory):
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run `make nginx` (Debian's nginx package)")
    server = Nginx(tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


@pytest.fixture
def env(nginx, tmp_path, monkeypatch):
    """Every cache in this test's directory, the hub at our nginx, no token unless a test sets one."""
    for var in ("LLAMA_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "MODEL_ENDPOINT", "HF_TOKEN",
                "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_ENDPOINT", nginx.url)
    return tmp_path / "cache"


def run(*args: str):
    return CliRunner(mix_stderr=False).invoke(app, list(args))


def json_of(*args: str):
    r = run(*args)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def without(d: dict, *keys: str) -> dict:
    return {k: v for k, v in d.items() if k not in keys}


# --- the header only ---

@pytest.mark.parametrize("local,remote", [
    (fixture_path("llama-gqa"), "/f/llama-gqa.gguf"),
    (fixture_path("gemma3-swa"), "/f/gemma3-swa.gguf"),
    (SPLIT[0], "/f/split/llama-gqa-split-00001-of-00003.gguf"),
])
def test_url_answers_as_the_local_file_from_the_header_alone(env, nginx, local, remote):
    url = nginx.url + remote
    mark = len(nginx.log())
    got = json_of("inspect", "--json", url)
    fetched = nginx.since(mark)
    assert without(got, "path", "url") == without(json_of("inspect", "--json", str(local)), "path")
    assert got["path"] == got["url"] == url
    # every file of the model (each shard) cost its header and at most one read-ahead block, never the whole file
    shards = SPLIT if "split" in remote else [local]
    for shard in shards:
        rows = [r for r in fetched if r["uri"].endswith(shard.name)]
        assert [r["method"] for r in rows] == ["HEAD", "GET"] and rows[1]["status"] == 206
        assert rows[1]["range"] == f"bytes=0-{min(HEADER_BLOCK, shard.stat().st_size) - 1}"
        assert sum(r["sent"] for r in rows) <= read_gguf(shard).data_offset + HEADER_BLOCK + 2 * REQUEST_OVERHEAD
    assert sum(r["body"] for r in fetched) < sum(s.stat().st_size for s in shards)

    # asked again: one conditional HEAD per file, answered 304 from the header cache; no body
    mark = len(nginx.log())
    assert json_of("inspect", "--json", url) == got
    again = nginx.since(mark)
    assert [(r["method"], r["status"], r["body"]) for r in again] == [("HEAD", 304, 0)] * len(shards)

    flags = ["-c", "2048", "-np", "2", "-ctk", "q8_0", "--total", "--json"]
    est, local_est = json_of("estimate", url, *flags), json_of("estimate", str(local), *flags)
    assert est["model"]["path"] == url and without(est, "model") == without(local_est, "model")
    fit = ["--memory", "1.5GiB", "-ct", "f16,q4_0", "--json"]
    by_url, by_path = json_of("fit", url, *fit), json_of("fit", str(local), *fit)
    assert [without(r, "command") for r in by_url] == [without(r, "command") for r in by_path]
    assert all(r["command"]["llama-server"].startswith(f"llama-server -mu {url} -c ") for r in by_url if r["ctx_size"])
    assert [r["method"] for r in nginx.since(mark + len(again))] == ["HEAD"] * 2 * len(shards)  # no more bytes


def with_padding_key(src: Path, dst: Path, n: int) -> None:
    """``src`` with one more key/value first: an array of n strings (a large vocabulary's worth of
    header), sized to a multiple of the alignment so the tensor data only moves, still aligned."""
    data = src.read_bytes()
    strings = [b"padding-string-%06d" % i for i in range(n)]
    kv = lambda: (struct.pack("<Q", 12) + b"test.padding" + struct.pack("<IIQ", 9, 8, n)
                  + b"".join(struct.pack("<Q", len(x)) + x for x in strings))
    strings[-1] += b"x" * (-len(kv()) % 32)
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    dst.write_bytes(data[:16] + struct.pack("<Q", n_kv + 1) + kv() + data[24:])


def test_a_large_header_grows_by_read_ahead_blocks(env, nginx, tmp_path):
    """A header larger than the first block: the range reads double until the walk ends, and the
    transfer is the header plus at most the last block."""
    from ggufprof.api import load_model

    big = tmp_path / "big-header.gguf"
    with_padding_key(fixture_path("llama-gqa"), big, 40_000)
    (nginx.root / "www" / "big").mkdir(exist_ok=True)
    target = nginx.root / "www" / "big" / big.name
    target.unlink(missing_ok=True)
    target.symlink_to(big)
    mark = len(nginx.log())
    info = load_model(f"{nginx.url}/big/{big.name}")
    gets = [r for r in nginx.since(mark) if r["method"] == "GET"]
    header = read_gguf(big).data_offset
    assert header > 4 * HEADER_BLOCK and info.n_params == load_model(fixture_path("llama-gqa")).n_params
    assert [r["body"] for r in gets][:3] == [HEADER_BLOCK, 2 * HEADER_BLOCK, 4 * HEADER_BLOCK]
    assert header <= sum(r["body"] for r in gets) <= header + gets[-1]["body"]


def test_hf_repo_picks_the_file_as_llama_cpp_does(env, nginx):
    def inspected(*args):
        return without(json_of("inspect", "--json", *args), "path", "url", "hf_repo")

    gqa, swa = (without(json_of("inspect", "--json", str(fixture_path(n))), "path") for n in ("llama-gqa", "gemma3-swa"))
    assert inspected("-hf", REPO) == swa  # no tag: Q4_K_M first, and never the mmproj file
    assert inspected("-hf", f"{REPO}:q8_0") == gqa  # the tag is case-insensitive
    assert inspected("--hf-repo", f"{REPO}:Q4_K_M", "--hf-file", "tiny-Q8_0.gguf") == gqa  # the file wins
    split = inspected("-hf", f"{REPO}:F16")
    assert split == without(json_of("inspect", "--json", str(SPLIT[0])), "path") and split["n_params"] > 0
    got = json_of("inspect", "--json", "-hf", f"{REPO}:Q8_0")
    assert got["url"] == f"{nginx.url}/{REPO}/resolve/{COMMIT}/tiny-Q8_0.gguf" and got["hf_repo"] == f"{REPO}:Q8_0"

    r = run("inspect", "-hf", f"{REPO}:Q5_K_S")
    assert r.exit_code == 2 and r.stderr.startswith("Error: test/tiny-GGUF: no GGUF file for quant 'Q5_K_S'")
    assert r.stderr.count("\n") == 1 and "tiny-Q8_0.gguf" in r.stderr
    for args, msg in [(["-hf", "no-slash"], "expected <user>/<model>[:quant]"),
                      (["x.gguf", "-hf", REPO], "give MODEL or --hf-repo, not both"),
                      (["--hf-file", "a.gguf"], "--hf-file needs --hf-repo"), ([], "missing MODEL")]:
        r = run("inspect", *args)
        assert r.exit_code == 2 and msg in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_a_private_repository_needs_hf_token(env, nginx, monkeypatch):
    r = run("inspect", "-hf", f"{PRIVATE}:Q8_0")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "authentication required (401)" in r.stderr and "set HF_TOKEN" in r.stderr
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    got = json_of("inspect", "--json", "-hf", f"{PRIVATE}:Q8_0")
    assert got["architecture"] == "llama"
    # the token goes to the model endpoint only: a URL on another host gets none
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.example")
    r = run("inspect", f"{nginx.url}/{PRIVATE}/resolve/main/tiny-Q8_0.gguf")
    assert r.exit_code == 2 and "sends a token (HF_TOKEN) only to the model endpoint" in r.stderr


# --- errors a user can act on ---

class ClosingServer:
    """A real server that answers HEAD properly, then sends the status line, headers and 1,000 bytes
    of a 64 KiB range, and closes the connection: a connection dropped in the middle of the header."""

    def __init__(self, body: bytes):
        self.body = body
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/m.gguf"
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536).decode()
                size = len(self.body)
                if request.startswith("HEAD"):
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nAccept-Ranges: bytes\r\n"
                                 f"ETag: \"x\"\r\nConnection: close\r\n\r\n".encode())
                else:
                    conn.sendall(f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-65535/{size}\r\n"
                                 f"Content-Length: 65536\r\nConnection: close\r\n\r\n".encode() + self.body[:1000])

    def close(self) -> None:
        self.sock.close()


def test_errors_are_one_line_and_leave_no_cache_entry(env, nginx):
    closing = ClosingServer(fixture_path("llama-gqa").read_bytes())
    refused = f"http://127.0.0.1:{free_port()}/m.gguf"
    try:
        cases = [
            (f"{nginx.url}/f/missing.gguf", "not found (404)"),
            (f"{nginx.url}/auth/llama-gqa.gguf", "authentication required (401)"),
            (f"{nginx.url}/norange/llama-gqa.gguf", "the server does not support range requests"),
            (refused, "connection refused to 127.0.0.1"),
            (closing.url, "the server closed the connection in the middle of the header"),
        ]
        for url, msg in cases:
            for command in (["inspect", url], ["estimate", url, "--total"], ["fit", url, "--memory", "2GiB"]):
                r = run(*command)
                assert r.exit_code == 2 and r.stdout == "", (command, r.stderr)
                assert r.stderr.startswith(f"Error: {url}: ") and msg in r.stderr and r.stderr.count("\n") == 1, r.stderr
    finally:
        closing.close()
    r = run("inspect", f"{nginx.url}/norange/llama-gqa.gguf")
    assert f"`ggufprof download {nginx.url}/norange/llama-gqa.gguf`" in r.stderr  # the command to run instead
    headers = env / "ggufprof" / "headers"
    assert not headers.exists() or list(headers.iterdir()) == []  # nothing half-written, nothing for failures

    # not a GGUF file at all: a text file served with range support
    (nginx.root / "www" / "f2").mkdir(exist_ok=True)
    (nginx.root / "www" / "f2" / "notes.gguf").write_text("hello, this is not a model\n" * 100)
    r = run("inspect", f"{nginx.url}/f2/notes.gguf")
    assert r.exit_code == 2 and "not a GGUF file (starts with b'hell'" in r.stderr and r.stderr.count("\n") == 1


# --- whole downloads: sweep, quality, download ---

def test_download_resumes_an_interrupted_download_and_verifies_it(env, nginx, tmp_path):
    url = f"{nginx.url}/slow/llama-gqa.gguf"  # the first download is throttled, a resumed one is not
    final = llama_cache_dir() / "llama-gqa.gguf"
    assert final == env / "llama.cpp" / "llama-gqa.gguf"  # llama.cpp's cache and its -mu naming
    partial = final.with_name(final.name + ".downloadInProgress")
    child = subprocess.Popen([sys.executable, "-m", "ggufprof", "download", url], env=os.environ.copy(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (partial.exists() and partial.stat().st_size >= 100_000) and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read()
        time.sleep(0.05)
    child.kill()
    child.wait()
    have = partial.stat().st_size
    assert 100_000 <= have < final_size() and not final.exists()

    mark = len(nginx.log())
    r = run("download", url)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == str(final) and not partial.exists()
    assert sha256(final) == sha256(fixture_path("llama-gqa"))
    (get,) = [row for row in nginx.since(mark) if row["method"] == "GET"]
    assert get["status"] == 206 and get["range"].startswith("bytes=") and get["body"] == final_size() - int(get["range"][6:-1])
    assert (final.parent / "llama-gqa.gguf.etag").read_text().startswith('"')  # llama.cpp's .etag beside it

    # in the cache now: a header question reads it (no GET), and so does a second download
    mark = len(nginx.log())
    assert json_of("inspect", "--json", url)["n_params"] > 0
    assert run("download", url).exit_code == 0
    assert [row["method"] for row in nginx.since(mark)] == ["HEAD", "HEAD"]


def final_size() -> int:
    return fixture_path("llama-gqa").stat().st_size


def test_a_wrong_checksum_is_refused_and_nothing_kept(env, nginx):
    url = f"{nginx.url}/badsum/gemma3-swa.gguf"  # its ETag is a sha256 (as the hub's), not this file's
    r = run("download", url)
    assert r.exit_code == 2 and "sha256 differs from the server's (0000000000000000…)" in r.stderr
    assert r.stderr.count("\n") == 1
    assert list((env / "llama.cpp").iterdir()) == []


def test_hf_download_shares_llama_cpps_cache(env, nginx):
    """-hf downloads land in the Hugging Face layout llama.cpp reads (blobs by sha256, a snapshot link,
    refs/main), checked against the repository's sha256; llama.cpp itself then finds the model there."""
    r = run("download", "-hf", f"{REPO}:Q8_0")
    assert r.exit_code == 0, r.stderr
    root = hf_cache_dir() / "models--test--tiny-GGUF"
    assert root == env / "huggingface" / "hub" / "models--test--tiny-GGUF"
    snapshot = root / "snapshots" / COMMIT / "tiny-Q8_0.gguf"
    blob = root / "blobs" / sha256(fixture_path("llama-gqa"))
    assert r.stdout.strip() == str(snapshot)
    assert snapshot.is_symlink() and os.readlink(snapshot) == f"../../blobs/{blob.name}" and blob.is_file()
    assert (root / "refs" / "main").read_text() == COMMIT
    assert sha256(blob) == blob.name

    tool = llama_tools_bin() / "llama-fit-params"
    if not tool.exists():
        pytest.fail(f"{tool} is missing: run scripts/build_llama_tools.sh llama-fit-params (make archs) first")
    mark = len(nginx.log())
    out = subprocess.run([str(tool), "-hf", f"{REPO}:Q8_0", "-c", "512", "--fit-print", "on"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LD_LIBRARY_PATH": str(tool.parent)})
    assert out.returncode == 0, out.stderr[-2000:]
    asked = nginx.since(mark)
    assert not [row for row in asked if row["uri"].endswith(".gguf")], asked  # llama.cpp did not download it again
    assert any(row["uri"] == f"/api/models/{REPO}/refs" for row in asked)


def test_sweep_of_a_url_downloads_it_and_records_where_from(env, nginx, tmp_path):
    url = f"{nginx.url}/f/llama-gqa.gguf"
    out = tmp_path / "out"
    r = run("sweep", url, "--out", str(out), "-ct", "f16", "-c", "512", "-p", "16", "-n", "4", "-r", "1", "-t", "2",
            "-d", "0")
    assert r.exit_code == 0, r.stderr
    (rec,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert rec["status"] == "ok" and rec["model"]["url"] == url
    assert rec["model"]["path"] == str(env / "llama.cpp" / "llama-gqa.gguf")
    assert rec["model"]["sha256"] == sha256(fixture_path("llama-gqa"))


def test_quality_of_a_repository_downloads_it_first(env, nginx):
    r = run("quality", "-hf", f"{REPO}:Q8_0", "-ct", "q8_0", "-c", "64", "--chunks", "2", "-t", "2", "--json")
    assert r.exit_code == 0, r.stderr
    (res,) = json.loads(r.stdout)
    assert res["cache_type_k"] == "q8_0" and res["n_chunks"] == 2 and res["kld_mean"] >= 0
    assert (hf_cache_dir() / "models--test--tiny-GGUF" / "blobs" / sha256(fixture_path("llama-gqa"))).is_file()


def test_load_model_takes_a_repository_and_a_header_only_model_is_downloaded_when_run(env, nginx):
    from ggufprof.api import load_model

    info = load_model(HfRepo(REPO, "Q8_0"))
    assert info.origin.header_only and info.path.stat().st_blocks * 512 < info.path.stat().st_size  # sparse
    whole = load_model(info, whole=True)
    assert not whole.origin.header_only and sha256(whole.path) == sha256(fixture_path("llama-gqa"))
