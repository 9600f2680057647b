"""Create contexts for one model and report what llama.cpp logged, one JSON line per setting.

``python -m ggufprof.measure.probe MODEL`` reads settings (one JSON object of KVSettings fields per
line) on stdin and writes, per setting, ``{"settings", "ok", "error", "n_ctx", "n_ctx_seq",
"log"}`` where ``log`` keeps llama.cpp's memory lines (cache creation, buffer and size lines).
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
    from .llama_ctx import LlamaModel

    try:
        model = LlamaModel(argv[0])
    except GgufprofError as e:
        print(json.dumps({"load_error": str(e)}), flush=True)
        return 0
    for line in sys.stdin:
        if not line.strip():
            continue
        s = KVSettings(**json.loads(line))
        out = {"settings": json.loads(line), "ok": False, "error": None, "n_ctx": None, "n_ctx_seq": None, "log": ""}
        try:
            c = model.create_context(s)
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
