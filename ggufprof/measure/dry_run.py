"""llama.cpp's own dry run and device list, in one worker process (measure/probe_worker.py).

The model is loaded once with ``no_alloc`` and each question is one context created from it: ~3 ms
and no memory, however large the settings, so a search (``fit``) asks one setting at a time. The
same process answers which devices llama.cpp has (ggml's backend list), so a search asks it once.
Its KV/RS size lines are cross-checked against the prediction: a difference is an error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import GgufprofError
from ..memory.placement import CPU, MAPPED, OffloadDevice, PlacementFlags, select_devices
from ..memory.predict import MemoryPrediction
from ..memory.settings import KVSettings
from ..results.checks import kv_mismatches
from ..results.llama_log import LlamaLog, mib_bytes, parse_log
from .workers import PROBE, Reply, Worker, run_once, take

GPU_TYPES = ("gpu", "igpu")  # enum ggml_backend_dev_type: the devices llama.cpp offloads layers to
DEVICES_TIMEOUT = 120.0


@dataclass(frozen=True)
class DryResult:
    log: LlamaLog
    n_ctx: int
    n_ctx_seq: int

    @property
    def compute_bytes(self) -> dict[str, int]:
        """Compute buffer bytes per buffer type (CPU, CUDA0, CUDA_Host, ...), as logged."""
        return {buft: mib_bytes(mib) for buft, mib in self.log.compute_buffers_mib.items()}


def _result(reply: Reply, what: str) -> object:
    if reply.ok:
        return reply.result
    if reply.refused:
        raise GgufprofError(reply.failure)
    raise GgufprofError(f"{what} died: {reply.failure}")


class DryRun:
    """llama.cpp's dry run of one model (``no_alloc``): contexts that allocate nothing."""

    def __init__(self, model_path: Path, n_gpu_layers: int = 0, repack: bool = True,
                 placement: PlacementFlags | None = None, whole_map: bool = False):
        """``placement``: every placement flag (replaces ``n_gpu_layers`` and ``repack``): the dry run
        places weights and compute buffers on the same devices as the real run. The worker is the one
        a command started early (workers.prestart), if any, else a new one.

        The device list is asked first: when no device takes anything, every weight is on the CPU,
        and the model is loaded with every tensor overridden to the CPU, which places nothing
        differently (src/llama-model-loader.cpp, create_tensor: an override to the CPU selects from
        the same ``cpu_buft_list`` a CPU layer uses) but logs the buffer type of each weight: the
        one load then also answers :meth:`cpu_buffer_types`. ``whole_map``: the caller will ask
        :meth:`cpu_buffer_types` whatever the placement (a search), so it is asked at once, of a
        second worker (``_ask_early``)."""
        self.placement = placement or PlacementFlags(n_gpu_layers=n_gpu_layers, repack=repack)
        self.model_path, self.repack = model_path, self.placement.repack
        self.loads = 0  # dry-run loads of the model in this worker (a placement search counts them; kept ones not)
        self.worker = take(PROBE)
        self._cpu_bufts: dict[PlacementFlags, dict[str, str]] = {}  # cpu_buffer_types, by cpu_buft_key
        self._early: tuple[PlacementFlags, Worker] | None = None  # cpu_buffer_types asked at once (_ask_early)
        try:
            self.devices = self._devices(self.placement) if self.placement.offloads else []
            if whole_map and self.devices:  # else the load below answers it, every tensor on the CPU
                self._ask_early()
            self._load(self.placement, all_on_cpu=not self.devices)
        except GgufprofError:
            self.close()
            raise

    def _load(self, placement: PlacementFlags, all_on_cpu: bool = False) -> None:
        loaded = _result(self.worker.ask({"op": "load", "model": str(self.model_path), "dry_run": True,
                                          "placement": placement.to_dict(), "all_on_cpu": all_on_cpu}),
                         "llama.cpp's dry run")
        self.loads += not loaded.get("kept")  # the worker kept this placement's model from before: no load
        if "load_error" in loaded:
            raise GgufprofError(loaded["load_error"])
        self.placement = placement
        log = parse_log(loaded["log"])
        self._model_bufts = frozenset(log.model_buffers_mib)  # as logged, sizes 0 in a dry run
        if all_on_cpu:  # the same device list, --no-host and --no-repack: cpu_buffer_types' answer for this key
            self._cpu_bufts.setdefault(placement.cpu_buft_key(), log.tensor_bufts)

    def load(self, placement: PlacementFlags) -> None:
        """The model loaded again at another placement (the compute buffers per device depend on
        where the layers are); nothing to do when it is the one loaded. Extra buffer types stay as
        first asked (``cpu_buffer_types``)."""
        if placement != self.placement:
            self._load(placement)

    def cpu_buffer_types(self, flags: PlacementFlags | None = None) -> dict[str, str]:
        """The buffer type llama.cpp gives each weight of this model on the CPU (tensor name -> CPU,
        CPU_REPACK, CUDA_Host, ...) at ``flags`` (default: this dry run's placement): it depends on the
        model's devices (the first one's pinned host buffer type), --no-host and --no-repack
        (make_cpu_buft_list, src/llama-model.cpp), so it is asked once per such combination: from the
        load itself when it had every weight on the CPU, else one more dry-run load (every tensor
        overridden to the CPU)."""
        key = (flags or self.placement).cpu_buft_key()
        if key not in self._cpu_bufts and self._early is not None and self._early[0] == key:
            early, self._early = self._early[1], None
            reply = early.receive()
            early.close(kill=True)
            if reply.ok:  # else asked again below, of the dry run's own worker, which says what is wrong
                self._cpu_bufts[key] = reply.result
        if key not in self._cpu_bufts:
            self._cpu_bufts[key] = _result(self.worker.ask(_cpu_bufts_request(self.model_path, key)),
                                           "llama.cpp's dry run")
        return self._cpu_bufts[key]

    def _ask_early(self) -> None:
        """``cpu_buffer_types`` sent at once to a second worker (the one launch.py prestarts for
        ``fit``), so that its load runs beside the placement's own instead of after it. An
        rpc-server answers one client at a time (ggml_backend_rpc_start_server), so over --rpc the
        two loads take turns there. Not for one placement (``estimate --total``): its own log
        answers on a GPU with mmap (``host_buffer_types``), and a second worker's start there
        costs a GPU backend's initialisation beside the first's."""
        key = self.placement.cpu_buft_key()
        w = take(PROBE)
        if w.send(_cpu_bufts_request(self.model_path, key)):
            self._early = key, w
        else:
            w.close(kill=True)

    def _drop_early(self) -> None:
        """The early worker killed, its answer not needed."""
        if self._early is not None:
            self._early[1].close(kill=True)
            self._early = None

    def host_buffer_types(self) -> dict[str, str]:
        """``cpu_buffer_types`` as far as the loaded placement needs it (the weights it keeps on the
        host), for a caller of this one placement (``estimate --total``; a search asks the whole
        map). A dry run logs each model buffer it would create, at 0 MiB (llama_model::load_tensors),
        so a weight in an extra buffer type (CPU_REPACK, AMX) shows as that buffer. When the log
        lists no host model buffer but the CPU's (``CPU``, ``CPU_Mapped``), every host weight is in
        the CPU's own buffer type: ``{}``, without a second load. With mmap a pinned host buffer type
        (``CUDA_Host``: what the dry run logs for the token embeddings on a GPU) counts as the CPU's,
        as place() puts its weights in the mapping (create_tensor: "avoid using a host buffer when
        using mmap"). Otherwise which weights are where is asked: one more load. At -ngl all on an
        H200 this took a third off a cold estimate --total (scripts/bench_estimate_speed.py --profile)."""
        host = self._model_bufts - {d.buft for d in self.devices}
        plain = {CPU, MAPPED}
        if self.placement.uses_mmap(self.devices):  # place() puts a pinned host buffer type's weights in the mapping
            plain |= {d.host_buffer_type for d in self.devices if d.host_buffer_type}
        if self.placement.cpu_buft_key() not in self._cpu_bufts and host and host <= plain:
            return {}
        return self.cpu_buffer_types()

    def _devices(self, placement: PlacementFlags) -> list[OffloadDevice]:
        backend = _result(self.worker.ask({"op": "devices", "rpc": list(placement.rpc)}), "the device probe")
        return select_devices(backend, placement)

    def offload_devices(self) -> list[OffloadDevice]:
        """The devices this model offloads to (llama.cpp's list in this worker, its RPC servers added,
        selected as llama_prepare_model_devices does); [] when the placement offloads nothing."""
        return self.devices

    def ask(self, s: KVSettings, offload_kqv: bool = True) -> DryResult:
        """The dry run's context for ``s``; GgufprofError when llama.cpp refuses it or the worker died."""
        out = _result(self.worker.ask({"op": "context", "settings": asdict(s), "offload_kqv": offload_kqv}),
                      "llama.cpp's dry run")
        if not out["ok"]:
            raise GgufprofError(out["error"])
        return DryResult(parse_log(out["log"]), out["n_ctx"], out["n_ctx_seq"])

    def close(self) -> None:
        """The workers are killed, not waited for: a dry run holds nothing to save, and freeing the
        model and unloading the libraries would cost the caller tens of milliseconds."""
        self.worker.close(kill=True)
        self._drop_early()

    def __enter__(self) -> "DryRun":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cpu_bufts_request(model_path: Path, key: PlacementFlags) -> dict:
    """The probe's request for the buffer type of every weight on the CPU at ``key`` (cpu_buft_key)."""
    return {"op": "cpu_bufts", "model": str(model_path), "repack": key.repack, "placement": key.to_dict()}


def backend_devices_in_worker(rpc: tuple[str, ...] = ()) -> list[dict]:
    """llama.cpp's own device list (ggml's backends: CPU, CUDA0, Vulkan0, RPC0, ...) with the free and
    total memory each reports, asked in a worker process so that the caller never loads llama.cpp;
    ``rpc``: rpc-servers (host:port) added first, as --rpc does."""
    try:
        return _result(run_once(PROBE, {"op": "devices", "rpc": list(rpc)}, DEVICES_TIMEOUT), "the device probe")
    except GgufprofError as e:
        raise GgufprofError(f"could not ask llama.cpp for its devices: {e}") from None


def gpu_names(devices: list[dict]) -> list[str]:
    """The GPUs in a device list (what ``-ngl`` offloads to), in llama.cpp's order."""
    return [d["name"] for d in devices if d.get("type") in GPU_TYPES]


def visible_gpu() -> str | None:
    """The GPU llama.cpp would offload to here (its first GPU device), or None: the one answer to
    "is there a GPU?" -- llama.cpp's own list, so a CPU-only build on a host with a GPU has none."""
    names = gpu_names(backend_devices_in_worker())
    return names[0] if names else None


def offload_devices(flags: PlacementFlags) -> list[OffloadDevice]:
    """The devices llama.cpp offloads to with these flags, in its order (memory/placement.py's
    select_devices over llama.cpp's own list); [] when nothing can leave host memory. Without -ts,
    llama.cpp splits layers by each device's free memory at load time: this list's free memory is
    the one place() splits by, so a split that depends on it can change between runs."""
    if not flags.offloads:
        return []
    return select_devices(backend_devices_in_worker(flags.rpc), flags)


def check_devices(flags: PlacementFlags) -> None:
    """``--rpc``, ``-dev`` and ``-mg`` against llama.cpp's own device list, before anything is measured:
    an rpc-server that does not answer, a build without the RPC backend or a device llama.cpp does not
    have is one error then, not a failed record per configuration."""
    if flags.rpc or flags.devices or flags.split_mode == "none":
        select_devices(backend_devices_in_worker(flags.rpc), flags)


def cross_check(pred: MemoryPrediction, dry: DryResult) -> None:
    """The dry run's logged KV/RS sizes must equal the prediction (its buffers are dummies)."""
    bad = kv_mismatches(pred, dry.log, dry.n_ctx, dry.n_ctx_seq, check_buffers=False)
    if bad:
        raise GgufprofError("llama.cpp's dry run disagrees with the prediction (a bug in ggufprof's model of "
                            f"llama.cpp, please report it): {'; '.join(map(str, bad[:3]))}")
