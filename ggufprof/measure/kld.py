"""Two next-token distributions compared row by row, in float64: KL divergence, top-1, NLL (pure numpy).

What is computed per scored position follows ``llama-perplexity --kl-divergence``
(tools/perplexity/perplexity.cpp, ``log_softmax(n_vocab, logits, base_log_prob, tok, kld)``):

* ``kld = sum_i p_base(i) * (log p_base(i) - log q(i))``: KL(base || quantized), base first;
* ``same_top``: the argmax token of both rows agrees (the first index on a tie, as its loops do);
* ``nll = -log q(tok)`` and ``nll_base = -log p_base(tok)`` of the token that actually comes next.

Where we differ, on purpose: llama-perplexity stores the base log-probabilities as 16-bit integers
(a scale of up to 16/65535 nats, everything below ``max - 16`` clamped) and skips vocabulary
entries with ``log p_base <= -16``, so its KLD carries a floor (its README: 0.00055 for f16
against itself on LLaMA 3 8B). Here both rows stay float32 logits from llama.cpp and the whole
vocabulary is summed in float64, so identical logits give exactly 0 and nothing is clamped.

Numerics: each row's log-sum-exp is ``max + log(sum(exp(x - max)))`` in float64;
``KL = sum_i p_i (x_i - y_i) + lse(y) - lse(x)`` (``sum p = 1``) with ``x - y`` taken in float64,
where the difference of two float32 values is exact. Identical rows take identical code paths,
so their KL is 0.0, not a rounding residue.

Memory: the rows are worked through a few at a time (``block_rows``: about 2 MiB per float64
scratch array, four of them), so the scratch stays ~8 MiB whatever the vocabulary, and the caller's
float32 logits are read in place, never copied whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCRATCH_BYTES = 2 << 20  # per float64 work array: cache-sized blocks ran ~2x faster than whole matrices


def block_rows(n_vocab: int, budget: int = SCRATCH_BYTES) -> int:
    """Rows per block so that one float64 work array of ``rows x n_vocab`` fits ``budget`` bytes."""
    return max(1, min(256, budget // (8 * max(n_vocab, 1))))


@dataclass
class RowStats:
    """Per-row results of comparing a block of quantized rows against the base rows."""

    kld: np.ndarray  # float64 [rows]
    nll: np.ndarray  # float64 [rows]: -log q(tok)
    same_top: np.ndarray  # bool [rows]


@dataclass
class BaseBlock:
    """One block of base rows, prepared once and compared against every cache type's rows."""

    x: np.ndarray  # float64 logits [rows, n_vocab] (a view into the comparer's scratch)
    p: np.ndarray  # float64 probabilities [rows, n_vocab]
    lse: np.ndarray  # float64 [rows]
    top: np.ndarray  # int [rows]
    nll: np.ndarray  # float64 [rows]: -log p_base(tok)


class RowComparer:
    """Holds the float64 scratch (four ``block_rows x n_vocab`` arrays) and compares blocks of rows.

    Usage: ``base = c.base(base_logits32[i:j], targets[i:j])`` then, for each cache type,
    ``c.compare(base, q_logits32[i:j], targets[i:j])``. ``rows`` per block: ``c.rows``."""

    def __init__(self, n_vocab: int, rows: int | None = None):
        self.n_vocab = n_vocab
        self.rows = rows or block_rows(n_vocab)
        self._x = np.empty((self.rows, n_vocab))
        self._p = np.empty((self.rows, n_vocab))
        self._y = np.empty((self.rows, n_vocab))
        self._s = np.empty((self.rows, n_vocab))

    @staticmethod
    def _lse(v: np.ndarray, work: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(log-sum-exp, argmax, sum of exp(v - max)) per row; ``work`` holds exp(v - max) after."""
        top = v.argmax(axis=1)
        m = v[np.arange(len(v)), top]
        np.subtract(v, m[:, None], out=work)
        np.exp(work, out=work)
        total = work.sum(axis=1)
        return m + np.log(total), top, total

    def base(self, logits: np.ndarray, targets: np.ndarray) -> BaseBlock:
        n = len(logits)
        x, p = self._x[:n], self._p[:n]
        np.copyto(x, logits)  # float32 -> float64, in cache-sized pieces
        lse, top, total = self._lse(x, p)
        p /= total[:, None]
        nll = lse - x[np.arange(n), targets]
        return BaseBlock(x, p, lse, top, nll)

    def compare(self, base: BaseBlock, logits: np.ndarray, targets: np.ndarray) -> RowStats:
        n = len(logits)
        y, s = self._y[:n], self._s[:n]
        np.copyto(y, logits)
        lse, top, _ = self._lse(y, s)
        np.subtract(base.x, y, out=s)
        kld = np.einsum("ij,ij->i", s, base.p) + (lse - base.lse)
        return RowStats(kld, lse - y[np.arange(n), targets], top == base.top)


def compare_matrices(base: np.ndarray, other: np.ndarray, targets: np.ndarray,
                     comparer: RowComparer | None = None) -> tuple[RowStats, np.ndarray]:
    """Whole matrices at once, block by block: (stats of ``other`` against ``base``, base NLL).
    For tests and small inputs; the quality worker drives RowComparer itself to share base blocks."""
    c = comparer or RowComparer(base.shape[1])
    parts, nll_base = [], []
    for i in range(0, len(base), c.rows):
        b = c.base(base[i:i + c.rows], targets[i:i + c.rows])
        parts.append(c.compare(b, other[i:i + c.rows], targets[i:i + c.rows]))
        nll_base.append(b.nll)
    if not parts:
        empty = np.empty(0)
        return RowStats(empty, empty, np.empty(0, dtype=bool)), empty
    return RowStats(np.concatenate([p.kld for p in parts]), np.concatenate([p.nll for p in parts]),
                    np.concatenate([p.same_top for p in parts])), np.concatenate(nll_base)
