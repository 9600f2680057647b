"""The probe worker: llama.cpp's device list, and contexts created for one model, on request.

Started through the worker protocol (measure/workers.py) by the dry run (measure/dry_run.py) and by
the architecture-suite test. Requests:

* ``{"op": "devices", "rpc"}`` -> llama.cpp's backend devices (name, type, free and total memory,
  registry, default buffer type), after adding the ``rpc`` servers (host:port list).
* ``{"op": "load", "model", "n_gpu_layers", "dry_run", "repack", "placement", "all_on_cpu"}`` -> ``{"load_error"}`` or
  ``{"log", "kept"}``: loads the model once (with ``dry_run``, llama.cpp's own ``no_alloc`` dry run: nothing is
  allocated, and the compute buffers are logged as for real); ``placement`` (memory/placement.py's
  PlacementFlags as a dict) replaces ``n_gpu_layers`` and ``repack``; ``log``: the load's memory lines
  (a model buffer per buffer type); ``all_on_cpu`` overrides every tensor to the CPU, as the
  ``cpu_bufts`` request does (for a placement that offloads nothing: the same placement, logged).
  Dry-run loads are kept (``Kept``), so that the same request again (a search asking another context
  at a placement it loaded before) is answered by the model already loaded: ``kept`` true, no load.
* ``{"op": "cpu_bufts", "model", "repack", "placement"}`` -> {tensor: buffer type}: the buffer type
  llama.cpp gives each weight when it is on the CPU (CPU, CPU_REPACK, CUDA_Host, ...), from a dry
  run with every tensor overridden to the CPU (llama_ctx.LlamaModel ``all_on_cpu``), which logs each
  choice; ``placement`` (PlacementFlags.cpu_buft_key as a dict: the devices, --no-host, --no-repack)
  decides the list it picks from (make_cpu_buft_list); without it llama.cpp's default devices.
* ``{"op": "context", "settings": KVSettings fields, "offload_kqv"}`` -> ``{"ok", "error", "n_ctx",
  "n_ctx_seq", "log"}``: one context created and freed; ``log`` keeps llama.cpp's memory lines
  (results/llama_log.py's catalogue).

One process answers a whole search or a model's settings, so that an abort inside llama.cpp (some
architectures assert on some settings) costs the caller one reply, which says so.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field

from ..errors import GgufprofError
from ..memory.placement import PlacementFlags
from ..memory.settings import KVSettings
from ..results.llama_log import memory_lines, parse_log
from .llama_ctx import LlamaModel, backend_devices, warm_up
from .workers import serve


KEPT_MODELS = 64  # dry-run models kept loaded at most ...
KEPT_BYTES = 512 << 20  # ... and the resident memory they may take (a 152k-token vocabulary: ~22 MiB each)


def _resident() -> int | None:
    """This process's resident memory (Linux /proc/self/statm), None where it cannot be read."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Kept:
    """Dry-run models kept loaded, by the request that loaded them, first come first kept (a search
    asks the same placements again in about the order it first asked them, at each cache type and
    -ub: an order a least-recently-used cache of fewer models would evict from as it goes). A no_alloc
    model holds its metadata and vocabulary, nothing of its weights: ``KEPT_BYTES`` of resident
    memory, as each load grew it, or ``KEPT_MODELS``, whichever comes first."""

    models: dict[str, tuple[LlamaModel, str]] = field(default_factory=dict)  # request -> (model, its load log)
    resident: int = 0  # bytes the kept models grew this process by

    def keep(self, key: str, model: LlamaModel, log: str, grew: int | None) -> bool:
        if len(self.models) >= KEPT_MODELS or grew is None or self.resident + grew > KEPT_BYTES:
            return False
        self.models[key] = model, log
        self.resident += max(grew, 0)
        return True


def _placement(request: dict) -> PlacementFlags | None:
    """A request's ``placement`` (PlacementFlags as a dict), None when it has none."""
    placement = request.get("placement")
    return None if placement is None else PlacementFlags.from_dict(placement)


class Probe:
    def __init__(self) -> None:
        self.model: LlamaModel | None = None
        self.kept = Kept()

    def __call__(self, request: dict) -> object:
        op = request.get("op")
        if op == "devices":
            return [asdict(d) for d in backend_devices(tuple(request.get("rpc") or ()))]
        if op == "load":
            return self._load(request)
        if op == "cpu_bufts":
            lm = LlamaModel(request["model"], 0, request.get("repack", True), dry_run=True, all_on_cpu=True,
                            placement=_placement(request))
            try:
                return parse_log(lm.load_log_text).tensor_bufts
            finally:
                lm.close()
        if op == "context":
            if self.model is None:
                raise GgufprofError("the probe has no model loaded")
            out = {"ok": False, "error": None, "n_ctx": None, "n_ctx_seq": None, "log": ""}
            try:
                c = self.model.create_context(KVSettings(**request["settings"]),
                                              offload_kqv=request.get("offload_kqv", True))
            except GgufprofError as e:
                out.update(error=str(e), log=memory_lines(getattr(e, "log_text", "")))
            else:
                out.update(ok=True, n_ctx=c.n_ctx, n_ctx_seq=c.n_ctx_seq, log=memory_lines(c.log_text))
                self.model.free_context(c)
            return out
        raise GgufprofError(f"the probe does not know the request {op!r}")

    def _load(self, request: dict) -> dict:
        """The model loaded as ``request`` says, or found kept from the same request before."""
        key = json.dumps({k: v for k, v in request.items() if k != "op"}, sort_keys=True)
        if key in self.kept.models:
            self._drop()
            self.model, log = self.kept.models[key]
            return {"log": log, "kept": True}
        self._drop()
        before = _resident()
        try:
            self.model = LlamaModel(request["model"], request.get("n_gpu_layers", 0), request.get("repack", True),
                                    dry_run=request.get("dry_run", False), all_on_cpu=request.get("all_on_cpu", False),
                                    placement=_placement(request))
        except GgufprofError as e:
            self.model = None
            return {"load_error": str(e)}
        log = memory_lines(self.model.load_log_text)
        if request.get("dry_run"):  # a real load holds weights: never kept
            after = _resident()
            self.kept.keep(key, self.model, log, None if before is None or after is None else after - before)
        return {"log": log, "kept": False}

    def _drop(self) -> None:
        """The model loaded now freed, unless it is kept."""
        if self.model is not None and all(m is not self.model for m, _ in self.kept.models.values()):
            self.model.close()
        self.model = None


if __name__ == "__main__":
    warm_up()  # llama.cpp's backends initialised before the first request, while the caller reads the model
    sys.exit(serve(Probe()))
