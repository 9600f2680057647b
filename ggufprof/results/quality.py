"""What a quantized KV cache costs in quality (pure): settings, statistics, the record block, thresholds.

The measurement (measure/quality.py) evaluates one text with an f16/f16 cache and with each cache
type pair and hands per-position arrays here; everything that turns them into numbers, and every
rule a user may want to look up, lives in this module:

* chunking (``chunk_count``), as ``perplexity()`` / ``kl_divergence()`` in llama.cpp's
  tools/perplexity/perplexity.cpp do it: the text is tokenized once (BOS added where the vocabulary
  asks for it), cut into ``n_chunk = min(--chunks, n_tokens // n_ctx)`` chunks of ``n_ctx`` tokens,
  at least ``2 * n_ctx`` tokens are required, each chunk's first token is replaced by BOS when the
  vocabulary adds one, and only positions ``n_ctx // 2 .. n_ctx - 2`` are scored (``first = n_ctx/2``;
  the model always has half a context behind the tokens it predicts);
* statistics (``summarize``) with llama-perplexity's definitions: mean KLD with its uncertainty
  (``mean_and_uncertainty``), median, percentiles by linear interpolation over the sorted values
  (its ``percentile`` lambda), maximum; "Same top p" as ``top1_agreement`` (a fraction); PPL of both
  runs as ``exp(mean NLL)`` and their relative change ``ppl / ppl_base - 1``;
* KLD by position bin inside the scored half of the chunk (quantization error grows with the depth
  of the cache the token attends to), which llama-perplexity does not print;
* the thresholds of the recommendation (``MAX_KLD``, ``MIN_TOP1``) and its wording.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import GgufprofError
from ..flags import parse_count
from ..memory.placement import PlacementFlags
from ..memory.settings import KVSettings

BASELINE = ("f16", "f16")
DEFAULT_CTX = 2048  # tokens per chunk when --quality-ctx is not given (capped at n_ctx_train)
MIN_CTX = 16  # below this the scored half of a chunk is a handful of tokens
POSITION_BINS = 4  # bins over the scored half of each chunk
DEFAULT_TEXT = Path(__file__).resolve().parent.parent / "data" / "quality_text.txt"

# The recommendation's thresholds. A cache type is "within" when its mean KLD against f16/f16 is at
# most MAX_KLD nats AND the most likely next token agrees at least MIN_TOP1 of the time. For scale:
# llama.cpp's own scoreboard (tools/perplexity/README.md, LLaMA 3 8B) gives Q8_0 *weights* a mean
# KLD of 0.0014 (0.00055 of it the floor of its 16-bit logit file), Q6_K 0.0055 and Q4_0 0.072:
# within = costs no more than what users already accept as lossless weight quantization.
MAX_KLD = 0.001
MIN_TOP1 = 0.99


@dataclass(frozen=True)
class QualitySettings:
    """How to measure: the cache types, the text, the chunk length and count, and the run settings.

    ``ctx`` and ``chunks`` mean llama-perplexity's ``-c`` and ``--chunks``; ``ctx`` None is
    ``min(DEFAULT_CTX, n_ctx_train)``, ``chunks`` None every chunk the text holds. ``text`` None is
    the packaged English text (DEFAULT_TEXT). The contexts use llama-perplexity's own settings
    otherwise: one sequence, swa_full off, n_ubatch 512."""

    cache_types: tuple[tuple[str, str], ...]
    ctx: int | None = None
    chunks: int | None = None
    text: str | None = None
    threads: int | None = None
    flash_attn: str = "auto"
    ubatch_size: int = 512  # a chunk is decoded in pieces of this many tokens (llama-perplexity's n_ubatch)
    offload_kqv: bool = True
    placement: PlacementFlags = field(default_factory=PlacementFlags)  # every placement flag (-ngl, --rpc, ...)

    @property
    def repack(self) -> bool:
        return self.placement.repack

    def to_dict(self) -> dict:
        """As the quality worker gets it (measure/workers.py: JSON); the placement as PlacementFlags.to_dict()."""
        d = asdict(self)
        d["cache_types"] = [list(p) for p in self.cache_types]
        d["placement"] = self.placement.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QualitySettings":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "cache_types": tuple(tuple(p) for p in d["cache_types"]),
                      "placement": PlacementFlags.from_dict(d.get("placement") or {})})


def check_counts(ctx: int | None, chunks: int | None) -> None:
    """The flag values on their own, before any file is read."""
    if ctx is not None and ctx < MIN_CTX:
        raise GgufprofError(f"--quality-ctx must be >= {MIN_CTX}, got {ctx}")
    if chunks is not None and chunks < 1:
        raise GgufprofError(f"--chunks must be >= 1, got {chunks}")


def resolve_ctx(ctx: int | None, n_ctx_train: int) -> int:
    """Tokens per chunk: the default 2048 capped at the model's training context; an explicit value
    beyond it is refused (quality measured past the trained context says nothing about the cache)."""
    if ctx is None:
        return min(DEFAULT_CTX, n_ctx_train) if n_ctx_train > 0 else DEFAULT_CTX
    if n_ctx_train > 0 and ctx > n_ctx_train:
        raise GgufprofError(f"--quality-ctx {ctx} is beyond the model's training context ({n_ctx_train})")
    return ctx


def chunk_count(n_tokens: int, n_ctx: int, chunks: int | None) -> int:
    """Chunks evaluated, as llama-perplexity: at least 2 * n_ctx tokens, then min(chunks, n_tokens // n_ctx)."""
    if n_tokens < 2 * n_ctx:
        raise GgufprofError(f"the text tokenizes to {n_tokens} tokens; --quality-ctx {n_ctx} needs at least "
                            f"{2 * n_ctx} (llama-perplexity's rule): give a longer --text or a smaller --quality-ctx")
    return min(chunks, n_tokens // n_ctx) if chunks else n_tokens // n_ctx


def first_scored(n_ctx: int) -> int:
    """The first scored position of a chunk (``first = n_ctx/2`` in perplexity.cpp)."""
    return n_ctx // 2


MAX_TEXT_BYTES = 256 << 20  # the largest --text: ~60M tokens of English (Wikitext-2's test set is 1.3 MB)
TEXT_PIECE = 1 << 20  # bytes decoded at a time when a whole file is checked
TOKEN_MARGIN = 64  # tokens before a prefix's cut that are dropped: they may tokenize otherwise in the whole text
_WHITESPACE = b" \t\n\r\f\v"


def text_path(path: str | None) -> tuple[Path, str]:
    """The text's file and how a record names it (the packaged text by its place in the package)."""
    return (Path(path), str(path)) if path else (DEFAULT_TEXT, "packaged: ggufprof/data/quality_text.txt")


def open_text(path: str | None) -> tuple[object, int]:
    """The text opened for reading, and its size: a regular file of at most MAX_TEXT_BYTES, else one
    GgufprofError at once. Opened without blocking, then judged by what was opened (``fstat``): a
    FIFO, a device (/dev/zero), a directory or a socket never hangs or is read without end."""
    p, _ = text_path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise GgufprofError(f"--text {p}: {e.strerror or e}") from None
    mode, size = (st := os.fstat(fd)).st_mode, st.st_size
    if not stat.S_ISREG(mode) or size > MAX_TEXT_BYTES or size == 0:
        os.close(fd)
        kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else
                "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
        why = (f"{kind}; the text must be a regular file" if not stat.S_ISREG(mode) else "empty" if size == 0 else
               f"{size / (1 << 20):,.1f} MiB, over the {MAX_TEXT_BYTES >> 20} MiB limit (the text is tokenized whole "
               "unless --chunks says how much is needed): cut it to the part you want evaluated")
        raise GgufprofError(f"--text {p}: {why}")
    return os.fdopen(fd, "rb"), size


def _check_utf8(data: bytes, where: Path, offset: int, decoder) -> bool:
    """Feed ``data`` (at byte ``offset`` of the file; b"" to end) to an incremental UTF-8 decoder;
    whether it held a character other than whitespace."""
    pending = len(decoder.getstate()[0])  # bytes of a character the last piece began
    try:
        return bool(decoder.decode(data, final=not data).strip())
    except UnicodeDecodeError as e:
        raise GgufprofError(f"--text {where}: not UTF-8 (byte {offset - pending + e.start})") from None


def check_text(path: str | None) -> dict:
    """The whole text checked before anything runs, one piece at a time (memory stays one piece):
    a regular file, at most MAX_TEXT_BYTES, UTF-8, not blank. {"source", "file_bytes"}."""
    import codecs

    p, source = text_path(path)
    f, size = open_text(path)
    decoder, offset, printable_seen = codecs.getincrementaldecoder("utf-8")(), 0, False
    with f:
        while piece := f.read(TEXT_PIECE):
            printable_seen |= _check_utf8(piece, p, offset, decoder)
            offset += len(piece)
        _check_utf8(b"", p, offset, decoder)
    if not printable_seen:
        raise GgufprofError(f"--text {p}: empty (only whitespace)")
    return {"source": source, "file_bytes": size}


def _cut(data: bytes) -> int:
    """Where a prefix of the text ends: before its last whitespace (so its last word is whole), or
    at its last character boundary when it has none; never inside a UTF-8 character."""
    cut = max(data.rfind(bytes([b])) for b in _WHITESPACE)
    if cut > 0:
        return cut
    cut = len(data) - 1  # before the last character, which may be cut off: back over its continuation bytes
    while cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return max(cut, 0)


def text_prefixes(path: str | None, first_bytes: int):
    """Ever longer prefixes of the text for a tokenizer to try, as (bytes, complete, the file's
    size): the first ``first_bytes`` long, each next one twice as long, each cut by ``_cut``; the
    last one the whole text (complete True). Only what is read is held: a caller that needs a few
    chunks of a 200 MB text stops after the first prefix. Each prefix is checked as UTF-8."""
    import codecs

    p, _ = text_path(path)
    f, size = open_text(path)
    data, want = b"", max(1, first_bytes)
    with f:
        while True:
            piece = f.read(min(want, size) - len(data))  # never past the size it had when opened
            data += piece
            complete = len(data) >= size or not piece
            prefix = data if complete else data[:_cut(data)]
            decoder = codecs.getincrementaldecoder("utf-8")()
            for at in range(0, len(prefix), TEXT_PIECE):
                _check_utf8(prefix[at:at + TEXT_PIECE], p, at, decoder)
            _check_utf8(b"", p, len(prefix), decoder)
            yield prefix, complete, size
            if complete:
                return
            want *= 2


def tokens_needed(n_ctx: int, chunks: int | None) -> int | None:
    """Tokens of the text a run uses: ``chunks`` chunks of ``n_ctx``, and at least two chunks' worth
    (llama-perplexity's rule, ``chunk_count``); None for every chunk the text holds (all of it)."""
    return max(chunks, 2) * n_ctx if chunks else None


def text_info(path: str | None, used: bytes, complete: bool, file_bytes: int, n_tokens: int) -> dict:
    """The record's ``text``: what was tokenized. ``sha256`` and ``bytes`` are of the bytes read and
    tokenized (the whole file, or with --chunks a prefix of it cut before a whitespace: a run over
    the same file, context and chunks reads the same prefix, so its sha256 compares the same),
    ``file_bytes`` the file's size, ``complete`` whether that was all of it, ``n_tokens`` the tokens
    kept from it (a prefix's last TOKEN_MARGIN tokens are dropped)."""
    return {"source": text_path(path)[1], "sha256": hashlib.sha256(used).hexdigest(), "bytes": len(used),
            "file_bytes": file_bytes, "complete": complete, "n_tokens": n_tokens}


def percentile(sorted_values, fraction: float) -> float:
    """llama-perplexity's percentile: linear interpolation at ``fraction * (n - 1)`` of the sorted values."""
    n = len(sorted_values)
    if fraction <= 0:
        return float(sorted_values[0])
    if fraction >= 1:
        return float(sorted_values[-1])
    p = fraction * (n - 1)
    i = int(p)
    p -= i
    return float((1 - p) * sorted_values[i] + p * sorted_values[min(i + 1, n - 1)])


def mean_and_uncertainty(values) -> tuple[float, float]:
    """Mean and the uncertainty of the mean, as perplexity.cpp's ``mean_and_uncertainty`` (0 when
    the count is 10 or less)."""
    import numpy as np

    n = len(values)
    if n < 1:
        return 0.0, 0.0
    f = float(np.mean(values))
    df = float(np.mean(np.square(values))) - f * f
    return f, (math.sqrt(df / (n - 1)) if df > 0 and n > 10 else 0.0)


@dataclass
class PositionBin:
    """KLD of the scored positions ``first..last`` of every chunk (position = tokens already in the cache)."""

    first: int
    last: int
    n: int
    kld_mean: float
    top1_agreement: float


@dataclass
class QualityResult:
    """One cache type pair against f16/f16 over the same tokens: the record's ``quality`` block and
    one object of ``ggufprof quality --json``."""

    cache_type_k: str
    cache_type_v: str
    n_ctx: int
    n_chunks: int
    n_scored: int
    kld_mean: float
    kld_mean_unc: float
    kld_median: float
    kld_p90: float
    kld_p99: float
    kld_p999: float
    kld_max: float
    kld_min: float
    top1_agreement: float  # fraction of scored positions whose most likely token is the baseline's
    top1_agreement_unc: float
    ppl: float
    ppl_base: float
    delta_ppl: float  # ppl / ppl_base - 1
    baseline_k: str = BASELINE[0]
    baseline_v: str = BASELINE[1]
    by_position: list[PositionBin] = field(default_factory=list)
    text: dict = field(default_factory=dict)  # source, sha256, bytes, n_tokens
    run: dict = field(default_factory=dict)  # flash attention as resolved, threads, timings

    @property
    def pair(self) -> tuple[str, str]:
        return self.cache_type_k, self.cache_type_v

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QualityResult":
        known = set(cls.__dataclass_fields__)
        out = cls(**{k: v for k, v in d.items() if k in known})
        out.by_position = [b if isinstance(b, PositionBin) else PositionBin(**b) for b in out.by_position]
        return out


def position_bins(positions, kld, same_top, first: int, n_ctx: int, bins: int = POSITION_BINS) -> list[PositionBin]:
    """Equal-width bins over the scored positions ``first .. n_ctx - 2`` (fewer when there are fewer positions)."""
    import numpy as np

    last = n_ctx - 2
    span = last - first + 1
    k = max(1, min(bins, span))
    edges = [first + (span * i) // k for i in range(k + 1)]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        sel = (positions >= lo) & (positions < hi)
        n = int(sel.sum())
        if n:
            out.append(PositionBin(lo, hi - 1, n, float(np.mean(kld[sel])), float(np.mean(same_top[sel]))))
    return out


def summarize(pair: tuple[str, str], kld, nll, nll_base, same_top, positions, n_ctx: int, n_chunks: int,
              text: dict | None = None, run: dict | None = None) -> QualityResult:
    """Per-position arrays (all scored positions of all chunks) to the statistics llama-perplexity prints."""
    import numpy as np

    kld = np.asarray(kld, dtype=np.float64)
    n = len(kld)
    if n == 0:
        raise GgufprofError("no scored positions: the chunks are too short")
    srt = np.sort(kld)
    mean, unc = mean_and_uncertainty(kld)
    top = float(np.mean(same_top))
    ppl, ppl_base = math.exp(float(np.mean(nll))), math.exp(float(np.mean(nll_base)))
    return QualityResult(
        cache_type_k=pair[0], cache_type_v=pair[1], n_ctx=n_ctx, n_chunks=n_chunks, n_scored=n,
        kld_mean=mean, kld_mean_unc=unc, kld_median=float(np.median(srt)), kld_p90=percentile(srt, 0.90),
        kld_p99=percentile(srt, 0.99), kld_p999=percentile(srt, 0.999), kld_max=float(srt[-1]),
        kld_min=float(srt[0]), top1_agreement=top,
        top1_agreement_unc=math.sqrt(top * (1 - top) / (n - 1)) if n > 1 else 0.0,
        ppl=ppl, ppl_base=ppl_base, delta_ppl=ppl / ppl_base - 1,
        by_position=position_bins(np.asarray(positions), kld, np.asarray(same_top), first_scored(n_ctx), n_ctx),
        text=dict(text or {}), run=dict(run or {}))


def within(q: QualityResult | dict) -> bool:
    """Inside the documented thresholds: mean KLD <= MAX_KLD and top-1 agreement >= MIN_TOP1."""
    kld, top = (q.kld_mean, q.top1_agreement) if isinstance(q, QualityResult) else (q["kld_mean"], q["top1_agreement"])
    return kld <= MAX_KLD and top >= MIN_TOP1


def thresholds_text() -> str:
    return f"mean KLD ≤ {MAX_KLD:g} and top-1 ≥ {MIN_TOP1:.0%}"


def fmt_kld(v: float | None) -> str:
    if v is None:
        return "—"
    return "0" if v == 0 else (f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.2e}")


def recommendation(model: str | None, measured: list[tuple[tuple[str, str], dict, float | None]]) -> str:
    """One line per model from measured numbers only: which cache types stay within the thresholds,
    and of those the one with the smallest KV cache. ``measured``: (pair, quality block, KV bytes
    relative to f16/f16 or None) per cache type pair. ``model`` None leaves the name out (a report
    names its model in its heading)."""
    lead = f"{model}: " if model else ""
    if not measured:
        return f"{lead}No quality measured (ggufprof quality MODEL, or sweep ... --quality)."
    ok = [(p, q, r) for p, q, r in measured if within(q)]
    out = [(p, q, r) for p, q, r in measured if not within(q)]

    def label(p: tuple[str, str]) -> str:
        return f"{p[0]}/{p[1]}"

    def figures(q: dict) -> str:
        return f"KLD {fmt_kld(q['kld_mean'])}, top-1 {q['top1_agreement']:.1%}"

    line = f"{lead}{'w' if model else 'W'}ithin {thresholds_text()}: "
    line += ", ".join(label(p) for p, _, _ in ok) if ok else "none of the measured cache types"
    if out:
        line += "; beyond: " + ", ".join(f"{label(p)} ({figures(q)})" for p, q, _ in out)
    sized = [(r, p) for p, _, r in ok if r is not None]
    if sized:
        r, p = min(sized)
        line += f". Smallest KV within them: {label(p)} ({r:.3f}× f16)" if r < 1 else ""
    return line + "."


def quality_settings(pairs: list[tuple[str, str]], ctx: str | int | None, chunks: int | None, text: str | Path | None,
                     threads: int, n_ctx_train: int, flash_attn: str = "auto", **run: object) -> QualitySettings:
    """QualitySettings from the flags, every value checked before anything runs (one Error line, exit 2):
    the counts, the chunk length against the training context, each pair's V type against flash
    attention (llama.cpp's own refusal, worded once in KVSettings) and the text."""
    n_ctx = parse_count(ctx, "--quality-ctx") if ctx is not None else None
    check_counts(n_ctx, chunks)
    resolve_ctx(n_ctx, n_ctx_train)
    for k, v in pairs:
        KVSettings(cache_type_k=k, cache_type_v=v, flash_attn=flash_attn).validate()
    check_text(str(text) if text else None)
    return QualitySettings(cache_types=tuple(pairs), ctx=n_ctx, chunks=chunks, text=str(text) if text else None,
                           threads=threads, flash_attn=flash_attn, **run)
