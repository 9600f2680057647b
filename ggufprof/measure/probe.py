"""Create contexts for one model and report what llama.cpp logged, one JSON line per setting.

``python -m ggufprof.measure.probe --devices`` prints llama.cpp's backend devices (name, type, free
and total memory) as one JSON line. ``python -m ggufprof.measure.probe MODEL [--dry-run] [--n-gpu-layers N]`` reads settings (one JSON
object of KVSettings fields per line, plus an optional ``offload_kqv``) on stdin and writes, per
setting, ``{"settings", "ok", "error", "n_ctx", "n_ctx_seq", "log"}`` where ``log`` keeps
llama.cpp's memory lines (cache creation, buffer and size lines), flushed at once: a caller may
ask one setting at a time (the dry run's search does). With ``--dry-run`` the model is loaded
with ``no_alloc``: nothing is allocated, and the compute buffers are logged as for real.
The model is loaded once, every context created and freed in turn. It runs in its own process so
that an abort inside llama.cpp (some architectures assert on some settings) costs that model's
remaining settings, not the caller: the caller sees the lines written so far and the exit status.
"""

from __future__ import annotations

import json
import sys

from ..errors import GgufprofError
from ..memory.settings import KVSettings

# The lines of llama.cpp's log that describe memory (see llama_log.py for their formats).
MEMORY_LINE_MARKERS = ("KV buffer size", "RS buffer size", "llama_kv_cache: size", "llama_memory_recurrent: size",
                       "KV cache, size", "llama_context: n_ctx", "compute buffer size", "output buffer size",
                       "model buffer size", "Flash Attention", "llama_context: flash_attn", "state buffer size",
                       "llama_dsv4_comp_state:", "creating DSV4")


def memory_lines(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines() if any(m in ln for m in MEMORY_LINE_MARKERS))


def main(argv: list[str]) -> int:
    import argparse

    from .llama_ctx import LlamaModel

    ap = argparse.ArgumentParser(prog="python -m ggufprof.measure.probe")
    ap.add_argument("model", nargs="?")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--n-gpu-layers", type=int, default=0)
    ap.add_argument("--devices", action="store_true", help="print llama.cpp's backend devices as one JSON line and exit")
    args = ap.parse_args(argv)
    if not args.devices and not args.model:
        ap.error("MODEL is required (or --devices)")
    if args.devices:
        from dataclasses import asdict

        from .llama_ctx import backend_devices

        print(json.dumps([asdict(d) for d in backend_devices()]), flush=True)
        return 0
    try:
        model = LlamaModel(args.model, args.n_gpu_layers, dry_run=args.dry_run)
    except GgufprofError as e:
        print(json.dumps({"load_error": str(e)}), flush=True)
        return 0
    for line in sys.stdin:
        if not line.strip():
            continue
        asked = json.loads(line)
        offload_kqv = asked.pop("offload_kqv", True)
        s = KVSettings(**asked)
        out = {"settings": asked, "ok": False, "error": None, "n_ctx": None, "n_ctx_seq": None, "log": ""}
        try:
            c = model.create_context(s, offload_kqv=offload_kqv)
        except GgufprofError as e:
            out["error"] = str(e)
            out["log"] = memory_lines(getattr(e, "log_text", ""))
        else:
            out.update(ok=True, n_ctx=c.n_ctx, n_ctx_seq=c.n_ctx_seq, log=memory_lines(c.log_text))
            model.free_context(c)
        print(json.dumps(out), flush=True)
    model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
