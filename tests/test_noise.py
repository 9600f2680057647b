"""Speed you can trust: the noise rules (pure), the grid's interleaved order, automatic repetitions."""

from __future__ import annotations

import math

from ggufprof.measure.grid import GridSpec, default_points, expand
from ggufprof.model.model_info import load_model_info
from ggufprof.results.noise import AUTO_MAX, CV_MAX, ci95_rel, enough, noise_reasons, record_noise

from .conftest import fixture_path


def test_ci_and_automatic_stop():
    assert math.isinf(ci95_rel([100.0]))
    assert ci95_rel([100.0, 100.0, 100.0]) == 0.0
    assert not enough([100.0, 100.0])  # never below 3 repetitions
    assert enough([100.0, 101.0, 99.0])  # t(2)=4.303 x 1/sqrt(3) / 100 = 2.5 % < 3 %
    assert not enough([100.0, 120.0, 80.0])
    assert enough([100.0, 150.0] * (AUTO_MAX // 2))  # the cap


def test_spread_and_machine_load_flag_a_block():
    calm = {"samples_tps": [100.0, 101.0, 99.0], "samples_noise": [{"others_cpu_share": 0.02}] * 3}
    assert noise_reasons(calm) == []
    spread = {**calm, "samples_tps": [100.0, 60.0, 140.0]}
    assert noise_reasons(spread) and f"> {CV_MAX:.0%}" in noise_reasons(spread)[0]
    busy = {**calm, "samples_noise": [{"others_cpu_share": 0.02}, {"others_cpu_share": 0.6}, {"others_cpu_share": None}]}
    assert "other processes used 60%" in noise_reasons(busy)[0]
    flagged = record_noise({"pp": calm, "tg": spread})
    assert flagged["speed_noisy"] and list(flagged["speed_noise"]) == ["tg"]


def test_grid_interleaves_cache_types():
    """Consecutive configurations differ only in the cache type, round-robin: any slow period as long
    as one round of configurations costs every cache type the same."""
    info = load_model_info(fixture_path("gemma3-swa"))
    pairs = [("f16", "f16"), ("q8_0", "q8_0"), ("q4_0", "q4_0")]
    spec = GridSpec(pairs, [1024, 4096], [False, True], [1, 2], [False, True], ["auto"], [0, 256], threads=2)
    runs = [rs for rs, _ in expand(info, spec)]
    order = [(rs.kv.cache_type_k, rs.kv.cache_type_v) for rs in runs]
    assert len(order) == 3 * 2 * 2 * 3 * 2
    for start in range(0, len(order), 3):
        assert sorted(order[start:start + 3]) == sorted(pairs)
        others = {",".join(t for t in rs.id.split(",") if not t.startswith(("ctk=", "ctv="))) for rs in runs[start:start + 3]}
        assert len(others) == 1, others  # the round differs in nothing else
    # a burst of load over any 6 consecutive configurations hits every cache type twice
    for start in range(len(order) - 5):
        window = order[start:start + 6]
        assert all(window.count(p) == 2 for p in pairs)


def test_default_points_measure_speed_at_depth():
    info = load_model_info(fixture_path("gemma3-swa"))  # n_ctx_train 8192
    ctx, depths = default_points(info, 640, 1 << 34)
    assert ctx == [8192] and depths == [0, 4096]
    ctx, depths = default_points(info, 640, 4096 * 2048)  # 4096 tokens of f16 KV at 2 KiB/token
    assert ctx == [4096] and depths == [0, 2048]


def test_default_grid_keeps_a_deep_test_at_the_context_given():
    """-c 2048 without -d: depth 0 and half of those 2048 cells (where a quantized cache's slowdown
    shows), not half of the default context, which no longer fits."""
    from ggufprof.measure.grid import fill_defaults
    from ggufprof.model.model_info import load_model_info

    from .conftest import fixture_path

    s = GridSpec(cache_types=[("f16", "f16")], ctx_sizes=[2048], swa_full=[False], parallel=[1], kv_unified=[False],
                 flash_attn=["auto"], depths=[], threads=1, n_prompt=512, n_gen=128)
    fill_defaults(load_model_info(fixture_path("llama-gqa")), s, mem_budget=1 << 30)
    assert s.ctx_sizes == [2048] and s.depths == [0, 1024]
    s.ctx_sizes, s.depths, s.parallel = [2048], [], [4]  # per sequence: 512 cells, no room for a deep test
    fill_defaults(load_model_info(fixture_path("llama-gqa")), s, mem_budget=1 << 30)
    assert s.depths == [0]
