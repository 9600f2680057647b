"""The pure half of quality: the float64 KLD kernel against a straightforward reference, llama-perplexity's
statistics (percentile, uncertainty, chunking), position bins, thresholds, the schema's version-2
block and compare's KLD rule. No llama.cpp here (tests/test_quality.py runs the real thing)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from ggufprof.errors import GgufprofError
from ggufprof.measure.kld import RowComparer, block_rows, compare_matrices
from ggufprof.results import quality as Q
from ggufprof.memory.settings import KVSettings
from ggufprof.results.compare import Thresholds, compare_quality
from ggufprof.results.run_settings import RunSettings
from ggufprof.results.schema import SCHEMA_VERSION, Record, validate


def _reference(base: np.ndarray, other: np.ndarray, targets: np.ndarray):
    """KL(base || other), top-1 and NLL the obvious way (scipy's log_softmax in float64)."""
    from scipy.special import log_softmax

    lp = log_softmax(base.astype(np.float64), axis=1)
    lq = log_softmax(other.astype(np.float64), axis=1)
    kld = (np.exp(lp) * (lp - lq)).sum(axis=1)
    rows = np.arange(len(base))
    return kld, base.argmax(1) == other.argmax(1), -lq[rows, targets], -lp[rows, targets]


@pytest.mark.parametrize("rows", [1, 3, 64])
def test_kernel_matches_reference_in_blocks(rows):
    rng = np.random.default_rng(7)
    base = (rng.standard_normal((50, 1000)) * 4).astype(np.float32)
    other = (base + rng.standard_normal(base.shape) * 0.1).astype(np.float32)
    targets = rng.integers(0, 1000, 50)
    st, nll_base = compare_matrices(base, other, targets, RowComparer(1000, rows))
    kld, same, nll, nllb = _reference(base, other, targets)
    np.testing.assert_allclose(st.kld, kld, rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(st.same_top, same)
    np.testing.assert_allclose(st.nll, nll, rtol=1e-12)
    np.testing.assert_allclose(nll_base, nllb, rtol=1e-12)
    assert (st.kld > 0).all()


def test_identical_rows_give_exactly_zero_even_with_extreme_logits():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((20, 500)) * 30).astype(np.float32)  # very peaked rows
    x[3] = 0.0  # a flat row
    x[4, :] = -1e30
    x[4, 17] = 80.0  # one-hot in practice
    st, _ = compare_matrices(x, x.copy(), np.zeros(20, dtype=int))
    assert (st.kld == 0.0).all() and st.same_top.all()


def test_top1_ties_take_the_first_index_as_llama_perplexity():
    base = np.array([[1.0, 3.0, 3.0, 0.0]], dtype=np.float32)
    other = np.array([[1.0, 2.0, 3.0, 3.0]], dtype=np.float32)
    st, _ = compare_matrices(base, other, np.array([0]))
    assert not st.same_top[0]  # argmax 1 vs 2
    assert block_rows(49152) >= 1 and block_rows(384) == 256


def test_percentile_and_uncertainty_as_perplexity_cpp():
    v = np.sort(np.array([0.5, 0.1, 0.4, 0.2, 0.3]))
    assert Q.percentile(v, 0.5) == pytest.approx(0.3)
    assert Q.percentile(v, 0.99) == pytest.approx(0.496)  # p = 3.96: 0.04 * 0.4 + 0.96 * 0.5
    assert Q.percentile(v, 0) == 0.1 and Q.percentile(v, 1) == 0.5
    vals = np.arange(20, dtype=float)
    mean, unc = Q.mean_and_uncertainty(vals)
    assert mean == pytest.approx(9.5)
    assert unc == pytest.approx(np.sqrt((np.mean(vals**2) - 9.5**2) / 19))
    assert Q.mean_and_uncertainty(np.arange(5.0))[1] == 0.0  # 10 or fewer values: no uncertainty


def test_chunking_rules():
    assert Q.chunk_count(10_000, 512, None) == 19
    assert Q.chunk_count(10_000, 512, 6) == 6
    assert Q.chunk_count(10_000, 512, 100) == 19
    with pytest.raises(GgufprofError, match="needs at least 1024"):
        Q.chunk_count(1000, 512, None)
    assert Q.first_scored(512) == 256
    assert Q.resolve_ctx(None, 8192) == 2048 and Q.resolve_ctx(None, 1024) == 1024
    with pytest.raises(GgufprofError, match="beyond the model's training context"):
        Q.resolve_ctx(4096, 2048)
    with pytest.raises(GgufprofError, match="--quality-ctx must be >= 16"):
        Q.check_counts(8, None)
    with pytest.raises(GgufprofError, match="--chunks must be >= 1"):
        Q.check_counts(None, 0)


def test_check_text_packaged_and_errors(tmp_path):
    info = Q.check_text(None)
    assert info["file_bytes"] > 40_000 and info["source"].startswith("packaged")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(GgufprofError, match="not UTF-8"):
        Q.check_text(str(tmp_path / "latin1.txt"))
    (tmp_path / "late.txt").write_bytes(b"word " * 300_000 + "caf\xe9".encode("latin-1"))  # past the first piece
    with pytest.raises(GgufprofError, match=r"not UTF-8 \(byte 1500003\)"):
        Q.check_text(str(tmp_path / "late.txt"))
    with pytest.raises(GgufprofError, match="No such file"):
        Q.check_text(str(tmp_path / "absent.txt"))
    (tmp_path / "blank.txt").write_text(" \n\t " * 10)
    with pytest.raises(GgufprofError, match="empty"):
        Q.check_text(str(tmp_path / "blank.txt"))


def test_text_prefixes_cut_before_whitespace_and_end_whole(tmp_path):
    """Each prefix ends before a whitespace (its last word whole) and is twice as long as the one
    before; the last is the whole file. Without whitespace, never inside a UTF-8 character."""
    words = "".join(f"w{i} " for i in range(2000)).encode()
    (tmp_path / "t.txt").write_bytes(words)
    out = list(Q.text_prefixes(str(tmp_path / "t.txt"), 1000))
    assert [c for _, c, _ in out] == [False] * (len(out) - 1) + [True] and out[-1][0] == words
    for prefix, complete, size in out[:-1]:
        assert words.startswith(prefix) and words[len(prefix):len(prefix) + 1] == b" " and size == len(words)
    assert all(1000 * 2**i - 6 <= len(p) < 1000 * 2**i for i, (p, _, _) in enumerate(out[:-1]))  # doubling
    (tmp_path / "u.txt").write_text("é" * 5000, encoding="utf-8")
    for prefix, _, _ in Q.text_prefixes(str(tmp_path / "u.txt"), 1001):
        prefix.decode("utf-8")  # a whole number of characters
    info = Q.text_info(str(tmp_path / "t.txt"), out[0][0], False, len(words), 100)
    n = len(out[0][0])
    assert info["bytes"] == n and info["sha256"] == hashlib.sha256(words[:n]).hexdigest() and not info["complete"]


def _summary(kld, top, n_ctx=64, chunks=2):
    first = Q.first_scored(n_ctx)
    per = n_ctx - 1 - first
    pos = np.tile(np.arange(first, n_ctx - 1), chunks)
    n = per * chunks
    kld = np.resize(np.asarray(kld, dtype=float), n)
    top = np.resize(np.asarray(top, dtype=bool), n)
    return Q.summarize(("q8_0", "q8_0"), kld, np.full(n, 2.0), np.full(n, 1.9), top, pos, n_ctx, chunks)


def test_summarize_and_position_bins():
    q = _summary([0.0, 0.002, 0.004], [True, True, False])
    assert q.n_scored == 62 and q.n_chunks == 2
    assert q.kld_mean == pytest.approx(np.mean(np.resize([0.0, 0.002, 0.004], 62)))
    assert q.kld_max == 0.004 and q.kld_min == 0.0
    assert q.ppl == pytest.approx(np.exp(2.0)) and q.delta_ppl == pytest.approx(np.exp(0.1) - 1)
    assert [(b.first, b.last) for b in q.by_position] == [(32, 38), (39, 46), (47, 54), (55, 62)]
    assert sum(b.n for b in q.by_position) == 62
    again = Q.QualityResult.from_dict(json.loads(json.dumps(q.to_dict())))
    assert again == q


def test_recommendation_from_measured_numbers_only():
    good = {"kld_mean": 0.0004, "top1_agreement": 0.995}
    bad = {"kld_mean": 0.07, "top1_agreement": 0.862}
    zero = {"kld_mean": 0.0, "top1_agreement": 1.0}
    line = Q.recommendation("M", [(("f16", "f16"), zero, 1.0), (("q8_0", "q8_0"), good, 0.531),
                                  (("q4_0", "q4_0"), bad, 0.281)])
    assert "within mean KLD ≤ 0.001 and top-1 ≥ 99%: f16/f16, q8_0/q8_0" in line
    assert "beyond: q4_0/q4_0 (KLD 0.0700, top-1 86.2%)" in line
    assert "Smallest KV within them: q8_0/q8_0 (0.531× f16)" in line
    only_f16 = Q.recommendation("M", [(("f16", "f16"), zero, 1.0), (("q4_0", "q4_0"), bad, 0.281)])
    assert "Smallest" not in only_f16
    assert Q.recommendation("M", []).startswith("M: No quality measured")
    assert Q.recommendation(None, [(("f16", "f16"), zero, 1.0)]) == "Within mean KLD ≤ 0.001 and top-1 ≥ 99%: f16/f16."
    assert Q.within(good) and not Q.within(bad) and not Q.within({"kld_mean": 0.0005, "top1_agreement": 0.98})


def _v1_record() -> dict:
    settings = RunSettings(KVSettings(), threads=2).to_dict()
    return {"schema_version": 1, "id": "x", "status": "skipped", "reason": "why", "settings": settings, "model": {},
            "resolved": {}, "predicted": {}, "measured": {}, "check": {}, "env": {}, "started_at": None}


def test_schema_v1_records_load_as_v2_without_quality():
    d = _v1_record()
    assert validate(d) == []
    rec = Record.from_dict(d)
    assert rec.schema_version == SCHEMA_VERSION == 2 and rec.quality is None
    assert Record.from_dict(rec.to_dict()) == rec
    with pytest.raises(ValueError, match="schema version 3 is not supported"):
        Record.from_dict({**d, "schema_version": 3})


def test_schema_validates_the_quality_block():
    d = {**_v1_record(), "schema_version": 2}
    q = _summary([0.001], [True]).to_dict()
    assert validate({**d, "quality": q}) == []
    assert validate({**d, "quality": {"error": "worker killed"}}) == []
    assert validate({**d, "quality": None}) == []
    assert validate({**d, "quality": {**q, "kld_mean": "big"}}) == ['quality.kld_mean: expected a finite number, got str "big"']
    assert validate({**d, "quality": {**q, "kld_mean": None}}) == ["quality.kld_mean: missing"]
    assert validate({**d, "quality": [1]})[0].startswith("quality: expected an object")


def test_compare_quality_absolute_threshold_same_text_only():
    th = Thresholds(max_kld_increase=0.001)
    b = {**_summary([0.004], [True]).to_dict(), "text": {"sha256": "a"}}
    assert compare_quality("i", b, {**b, "kld_mean": b["kld_mean"] + 0.0005}, th).verdict == "unchanged"
    assert compare_quality("i", b, {**b, "kld_mean": b["kld_mean"] + 0.0011}, th).verdict == "regression"
    assert compare_quality("i", b, {**b, "kld_mean": 0.0}, th).verdict == "improvement"
    zero = {**b, "kld_mean": 0.0}
    assert compare_quality("i", zero, zero, th).verdict == "unchanged"  # f16/f16: no ratio needed
    other = compare_quality("i", b, {**b, "text": {"sha256": "b"}}, th)
    assert other.verdict == "missing" and "different text" in other.note  # not comparable: lost, not a pass
    assert compare_quality("i", b, {"error": "killed"}, th).verdict == "missing"
    assert compare_quality("i", {"error": "killed"}, b, th).verdict == "not_compared"
    assert compare_quality("i", b, {"error": "killed"}, th).note == "not measured in the new results (killed)"
    assert compare_quality("i", None, None, th) is None
