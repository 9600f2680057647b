"""``fit`` searching the placement on real llama.cpp: the most layers (-ngl) or the fewest expert layers
on the host (-ncmoe) that leave a context within each offload device's budget, on the rpc-servers of
tests/rpc_rig.py. Every answer is judged by the exact prediction (``estimate --total`` of the answer
and of its next step, each a separate llama.cpp dry run), never by a figure copied from a run.

The fixtures and suite models are tiny (MiB), so the budgets are MiB with ``--margin 0``; the
searches are the same at GiB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shlex
import subprocess

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app

from .archs_suite import llama_tools_bin, suite_dir
from .conftest import fixture_path
from .rpc_rig import rpc_rig  # noqa: F401 (the fixture)

runner = CliRunner(mix_stderr=False)
MIB = 1 << 20


def totals(model: str, ctx: int, placement: list[str], *settings: str) -> dict[str, int]:
    """estimate --total per device (bytes) for one placement: the exact prediction an answer is held to."""
    r = runner.invoke(app, ["estimate", model, "-c", str(ctx), "--total", "--json", *placement, *settings])
    assert r.exit_code == 0, r.output
    return {dev: d["total_bytes"] for dev, d in json.loads(r.stdout)["total"].items()}


def fit(model: str, *args: str) -> list[dict]:
    r = runner.invoke(app, ["fit", model, "--margin", "0MiB", "--json", *args])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def _ngl(n: int) -> str:
    return "all" if n < 0 else str(n)


def test_dense_context_alone_cannot_fit_so_fit_moves_layers(rpc_rig):
    """gemma3-swa (8 layers) at its training context on one rpc-server whose budget is below what
    every layer offloaded needs: fit answers a partial -ngl (and part of one more layer's FFN on the
    host when that fits: llama.cpp's step 4), within the budget by the exact prediction, and its
    next step -- one more layer, or one more part of a layer -- is over it."""
    model, rpc = str(fixture_path("gemma3-swa")), rpc_rig.endpoints[0]
    dev = rpc_rig.buffer_types()[0]
    full = min(totals(model, 8192, ["--rpc", rpc, "-ngl", "all", "-ct", t])[dev] for t in ("f16", "q4_0"))
    budget = full - MIB  # every layer with the context does not fit, for either cache type
    rows = fit(model, "--vram", f"{budget}B", "--rpc", rpc, "-ct", "f16,q4_0")
    for row in rows:
        assert row["search"] == "placement" and row["searched"] in ("n_gpu_layers", "n_gpu_layers,override_tensor"), row
        p = row["placement"]
        assert row["ctx_size"] == 8192 and 0 <= p["n_gpu_layers"] < 9, row  # 8 layers + output: all is 9
        assert not p["tensor_split"], row  # one device: no -ts to write
        ct = ["-ctk", row["cache_type_k"], "-ctv", row["cache_type_v"]]
        cmd = shlex.split(row["command"]["llama-server"])
        answer = totals(model, 8192, cmd[cmd.index("-ngl"):cmd.index("--fit")], *ct)
        nxt = totals(model, 8192, ["--rpc", rpc, *shlex.split(row["next_step"])], *ct)
        assert answer[dev] == row["devices"][1]["total_bytes"] <= budget < nxt[dev], (row, answer, nxt)
        assert row["next_step"].startswith(f"-ngl {p['n_gpu_layers'] + (0 if p['overrides'] else 1)}")
        assert row["limited_by"]["device"] == dev and row["next_step_total_bytes"][dev] == nxt[dev]
        assert f"-ngl {p['n_gpu_layers']} --rpc {rpc}" in row["command"]["llama-server"]
        assert "-d " in row["command"]["llama-bench"] and f"--rpc {rpc}" in row["command"]["llama-bench"]
    assert rows[0]["dry_run_loads"] <= 16  # two cache types: a search from the prediction's bound, not every ngl


def test_host_budget_too_leaves_the_interval_of_layers(rpc_rig):
    """With host memory budgeted too, more layers help the device budget less and the host budget
    more: the answer is the most layers the device takes; when host memory is over there, nothing
    fits, and the smallest budget it would need is said."""
    model, rpc = str(fixture_path("gemma3-swa")), rpc_rig.endpoints[0]
    dev = rpc_rig.buffer_types()[0]
    full = totals(model, 8192, ["--rpc", rpc, "-ngl", "all"])[dev]
    (row,) = fit(model, "--vram", f"{full - MIB}B", "--rpc", rpc, "-ct", "f16")
    ngl = row["placement"]["n_gpu_layers"]
    host = totals(model, 8192, ["--rpc", rpc, "-ngl", str(ngl)])["CPU"]
    (ok,) = fit(model, "--vram", f"{full - MIB}B", "--memory", f"{host}B", "--rpc", rpc, "-ct", "f16")
    assert ok["ctx_size"] == 8192 and ok["placement"]["n_gpu_layers"] == ngl
    (over,) = fit(model, "--vram", f"{full - MIB}B", "--memory", f"{host - 1}B", "--rpc", rpc, "-ct", "f16")
    assert over["ctx_size"] == 0 and "host memory is over" in over["note"]
    assert over["smallest_budget_bytes"]["CPU"] == host


def _suite(name: str) -> str:
    path = suite_dir() / name
    if not path.exists():
        pytest.skip(f"{path} is missing (make archs writes llama.cpp's architecture suite)")
    return str(path)


def test_moe_experts_move_to_the_host_first(rpc_rig):
    """A suite MoE model (qwen3moe, 2 layers) whose context with every expert on the device is over
    budget: fit answers -ngl all with expert tensors on the host (llama.cpp's fit moves them first:
    -ncmoe N, and part of one more layer's with -ot), within the budget by the exact prediction, its
    next step (fewer on the host) over it."""
    model, rpc = _suite("qwen3moe-moe.gguf"), rpc_rig.endpoints[0]
    dev = rpc_rig.buffer_types()[0]
    full = totals(model, 4096, ["--rpc", rpc, "-ngl", "all"])[dev]
    (row,) = fit(model, "--vram", f"{full - 1}B", "-c", "4096", "--rpc", rpc, "-ct", "f16")
    p = row["placement"]
    assert row["searched"] in ("n_cpu_moe", "n_cpu_moe,override_tensor"), row
    assert p["n_gpu_layers"] == -1 and (p["n_cpu_moe"] >= 1 or p["overrides"]) and not p["tensor_split"], row
    cmd = shlex.split(row["command"]["llama-server"])
    answer = totals(model, 4096, cmd[cmd.index("-ngl"):cmd.index("--fit")])
    nxt = totals(model, 4096, ["--rpc", rpc, "-ngl", "all", *shlex.split(row["next_step"])])
    assert answer[dev] <= full - 1 < nxt[dev]
    assert row["next_step_total_bytes"][dev] == nxt[dev], row
    assert f"-ncmoe {p['n_cpu_moe']}" in row["command"]["llama-server"] or "-ncmoe" not in row["command"]["llama-server"]


def test_two_servers_each_with_its_own_budget(rpc_rig):
    """--vram A,B: one budget per rpc-server in llama.cpp's device order, -ts 1,1 (kept); the answer is
    within both by the exact prediction and its next step is over one of them. Here every layer on
    the servers is over the second only by its compute buffer, which pipeline parallelism enlarges
    (llama_context turns it on for every layer on several devices without -ot): part of layer 0's FFN
    moved to the second server (an -ot) turns it off, and that fits."""
    model, rpc = str(fixture_path("gemma3-swa")), ",".join(rpc_rig.endpoints)
    first, second = rpc_rig.buffer_types()
    place = ["--rpc", rpc, "-ts", "1,1"]
    full = totals(model, 8192, [*place, "-ngl", "all"])
    budgets = {first: full[first] + 4 * MIB, second: full[second] - 1}  # the second server binds
    (row,) = fit(model, "--vram", f"{budgets[first]}B,{budgets[second]}B", *place, "-ct", "f16")
    p = row["placement"]
    assert row["budget"]["per_device"] == budgets and p["tensor_split"] == [1.0, 1.0], row
    assert p["n_gpu_layers"] == -1 and [o[0][:8] for o in p["overrides"]] == [r"blk\.0\."], p
    answer = totals(model, 8192, _placement_of(row["command"]["llama-server"]))
    nxt = totals(model, 8192, [*place, *shlex.split(row["next_step"])])
    assert all(answer[d] <= budgets[d] for d in budgets) and any(nxt[d] > budgets[d] for d in budgets), (row, nxt)
    assert nxt == row["next_step_total_bytes"] and "-ts 1,1" in row["command"]["llama-server"]
    r = runner.invoke(app, ["fit", model, "--vram", "1GiB,1GiB,1GiB", *place])
    assert r.exit_code == 2 and "3 sizes for 2 offload device(s)" in r.stderr


def _rpc_totals(model: str, ctx: int, placement: list[str]) -> dict[str, int]:
    """estimate --total on the rpc-servers only (bytes per server)."""
    return {d: b for d, b in totals(model, ctx, placement, "-ct", "f16").items() if d.startswith("RPC")}


def test_a_user_split_gets_part_of_one_more_layer(rpc_rig):
    """-ts 1,1 given (proportions: llama.cpp splits however many layers -ngl offloads by them): the
    search moves -ngl and then, as without -ts, part of one more layer. gemma3-swa's layer 5 (its one
    full-attention layer) is over the first server's budget whole at -ngl 4 and within it with part of
    its FFN elsewhere: the answer is -ngl 4 with that -ot, keeping -ts 1,1 as given (not layer counts),
    within both budgets by the exact prediction, its next step over one -- and more on the servers
    than -ngl 3, which the -ts search answered before it had the partial step."""
    model, rpc = str(fixture_path("gemma3-swa")), ",".join(rpc_rig.endpoints)
    first, second = rpc_rig.buffer_types()
    place = ["--rpc", rpc, "-ts", "1,1"]
    whole = _rpc_totals(model, 8192, [*place, "-ngl", "4"])
    part = _rpc_totals(model, 8192, [*place, "-ngl", "4", "-ot", r"blk\.5\.ffn_(gate|up|gate_up|down).*=CPU"])
    assert part[first] < whole[first], (part, whole)  # the FFN's weights and its share of the compute buffer
    budgets = {first: (part[first] + whole[first]) // 2, second: whole[second] + 4 * MIB}
    (row,) = fit(model, "--vram", f"{budgets[first]}B,{budgets[second]}B", *place, "-ct", "f16")
    p = row["placement"]
    assert row["ctx_size"] == 8192 and row["searched"] == "n_gpu_layers,override_tensor", row
    assert p["tensor_split"] == [1.0, 1.0] and p["n_gpu_layers"] == 4 and len(p["overrides"]) == 1, p
    assert p["overrides"][0][0].startswith(r"blk\.5\.ffn_"), p  # the layer -ngl 4 adds, in part
    placement = _placement_of(row["command"]["llama-server"])
    assert placement[placement.index("-ts") + 1] == "1,1" and "-ot" in placement
    answer = _rpc_totals(model, 8192, placement)
    assert answer == {d["device"]: d["total_bytes"] for d in row["devices"] if d["device"].startswith("RPC")}
    assert all(answer[d] <= b for d, b in budgets.items()), (answer, budgets)
    nxt = _rpc_totals(model, 8192, [*place, *shlex.split(row["next_step"])])  # what the search chose: not the -ts
    assert "-ts" not in row["next_step"] and any(nxt[d] > b for d, b in budgets.items()), (row["next_step"], nxt)
    assert sum(answer.values()) > sum(_rpc_totals(model, 8192, [*place, "-ngl", "3"]).values())


def test_split_mode_none_gets_part_of_one_more_layer(rpc_rig):
    """-sm none -mg 1: every offloaded layer on the second server alone (llama.cpp keeps the main
    device only). At a budget between -ngl 5 whole and -ngl 5 with layer 4's ffn_down on the host,
    the answer is the latter (the least of a layer llama.cpp's fit moves: LAYER_FRACTION_GATE), its
    next step -ngl 5 whole; -sm none and -mg 1 stay in the command."""
    model, rpc = str(fixture_path("gemma3-swa")), ",".join(rpc_rig.endpoints)
    second = rpc_rig.buffer_types()[1]
    place = ["--rpc", rpc, "-sm", "none", "-mg", "1"]
    down = r"blk\.4\.ffn_down.*"
    whole = _rpc_totals(model, 8192, [*place, "-ngl", "5"])[second]
    part = _rpc_totals(model, 8192, [*place, "-ngl", "5", "-ot", f"{down}=CPU"])[second]
    assert part < whole and _rpc_totals(model, 8192, [*place, "-ngl", "4"])[second] < part
    budget = (part + whole) // 2
    (row,) = fit(model, "--vram", f"{budget}B", *place, "-ct", "f16")
    p = row["placement"]
    assert (p["n_gpu_layers"], p["overrides"], p["split_mode"], p["main_gpu"]) == (5, [[down, "CPU"]], "none", 1), p
    assert row["next_step"] == "-ngl 5" and row["next_step_total_bytes"][second] == whole > budget, row
    assert row["devices"][1]["device"] == second and row["devices"][1]["total_bytes"] == part <= budget
    command = row["command"]["llama-server"]
    assert "-sm none" in command and "-mg 1" in command and "-ts" not in command, command


def test_the_judge_of_a_placement(rpc_rig):
    """split_search.Judge, on a real dry run: at a budget of exactly a placement's total on its device,
    the placement fits by every judge; a byte less, the dry run and the guess (whose compute buffers
    are that placement's own, the one asked) say over while the prediction alone (no compute
    buffers: a lower bound) still says within. Host memory counts only when asked (``host``)."""
    from ggufprof.measure.fit import Budget, Fitter
    from ggufprof.measure.split_search import BARE, GUESS, REAL
    from ggufprof.memory.placement import PlacementFlags
    from ggufprof.memory.settings import KVSettings
    from ggufprof.model.model_info import load_model_info

    info = load_model_info(fixture_path("gemma3-swa"))
    flags = PlacementFlags(n_gpu_layers=4, rpc=rpc_rig.endpoints[:1])
    s = KVSettings(ctx_size=8192)
    dev = rpc_rig.buffer_types()[0]
    fitter = Fitter(info, s, Budget(vram=1 << 40, margin=0), flags)
    try:
        _, devs = fitter.total(s, flags)
        real = {d.device: d for d in devs}
        assert real[dev].compute_bytes > 0 and real["CPU"].compute_bytes > 0
        for budget, verdict in ((real[dev].total_bytes, True), (real[dev].total_bytes - 1, False)):
            fitter.budget = Budget(host=real["CPU"].total_bytes - 1, vram=budget, margin=0)
            judge = fitter.judge(s)
            assert judge.fits(flags, BARE) is True  # weights and KV alone are within
            assert judge.fits(flags, GUESS) is verdict and judge.fits(flags, REAL) is verdict
            assert judge.fits(flags, REAL, host=True) is False  # host memory is a byte over
        fitter.budget = Budget(vram=real[dev].total_bytes - real[dev].compute_bytes - 1, margin=0)
        assert fitter.judge(s).fits(flags, BARE) is False  # over without compute buffers: over
    finally:
        fitter.close()


def test_verify_creates_a_partial_offload_answer_on_the_servers(rpc_rig):
    """--verify loads the answer for real (weights sent to the rpc-server) and creates its context:
    every buffer llama.cpp logs on the server, summed, is within the budget, and equals the
    predicted total to the 0.01 MiB llama.cpp prints."""
    model, rpc = str(fixture_path("gemma3-swa")), rpc_rig.endpoints[0]
    dev = rpc_rig.buffer_types()[0]
    full = totals(model, 8192, ["--rpc", rpc, "-ngl", "all", "-ct", "q8_0"])[dev]
    r = runner.invoke(app, ["fit", model, "--margin", "0MiB", "--json", "--vram", f"{full - MIB}B", "--rpc", rpc,
                            "-ct", "q8_0", "--verify"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    v = row["verify"]
    assert 0 < row["placement"]["n_gpu_layers"] < 9 and v["fits"] is True, row
    assert v["logged_bytes"][dev] <= v["limit_bytes"][dev] == full - MIB
    lines = 4  # model, KV (one line per cache: full and SWA), compute buffers, each printed to 0.01 MiB
    assert abs(v["logged_bytes"][dev] - v["predicted_bytes"][dev]) <= lines * 0.005 * MIB


def test_a_smaller_ubatch_is_offered_when_the_compute_buffer_limits(rpc_rig):
    """qwen3moe's next step is stopped by the device's compute buffer: the same search at a smaller
    -ub is offered beside the answer (the answer keeps -ub 512), and that alternative is itself
    within the budget by the exact prediction, giving at least as much on the device."""
    model, rpc = _suite("qwen3moe-moe.gguf"), rpc_rig.endpoints[0]
    dev = rpc_rig.buffer_types()[0]
    full = totals(model, 4096, ["--rpc", rpc, "-ngl", "all"])[dev]
    (row,) = fit(model, "--vram", f"{full - 1}B", "-c", "4096", "--rpc", rpc, "-ct", "f16")
    assert row["limited_by"]["by"] == "compute buffer" and row["ubatch_size"] == 512, row
    alt = row["alternative"]
    assert alt is not None and alt["ubatch_size"] in (256, 128, 64), row
    cmd = shlex.split(alt["command"]["llama-server"])
    assert totals(model, 4096, cmd[cmd.index("-ngl"):cmd.index("--fit")], "-ub", str(alt["ubatch_size"]))[dev] <= full - 1
    weights = {k: next(d["weights_bytes"] for d in r["devices"] if d["device"] == dev) for k, r in (("alt", alt), ("row", row))}
    assert weights["alt"] > weights["row"], (alt, row)  # more of the experts on the device than at -ub 512
    assert f"-ub {alt['ubatch_size']}" in alt["command"]["llama-server"]
    assert "-ub" not in row["command"]["llama-server"]


def test_vram_free_is_what_llama_cpp_reports_free(rpc_rig):
    """--vram free: each device's budget is the free memory llama.cpp's device list reports (an
    rpc-server: its host's RAM), so a tiny model fits with every layer offloaded."""
    model, rpc = str(fixture_path("llama-gqa")), ",".join(rpc_rig.endpoints)
    (row,) = fit(model, "--vram", "free", "--rpc", rpc, "-ts", "1,1", "-ct", "f16")
    per = row["budget"]["per_device"]
    assert list(per) == rpc_rig.buffer_types() and all(v > 1 << 30 for v in per.values())
    assert row["ctx_size"] == 4096 and row["placement"]["n_gpu_layers"] == -1


def _placement_of(command: str) -> list[str]:
    """Every placement flag of an answer's llama-server command (-ngl up to --fit, --rpc included)."""
    args = shlex.split(command)  # it quotes -ot values
    return args[args.index("-ngl"):args.index("--fit")]


def test_two_devices_without_ts_fit_chooses_the_split_and_a_partial_layer(rpc_rig):
    """Two rpc-servers with their own budgets and no -ts (llama4-moe: 4 layers, dense and MoE FFNs
    interleaved): fit chooses the layers per device (-ts as integer counts, which llama.cpp's split
    points give exactly) and part of one more layer (-ot of its FFN); the llama-server command
    reproduces the answer's totals, a real load of it (--verify: every buffer llama.cpp logs) is
    within each budget, and its next step is over one by the exact prediction."""
    model, rpc = _suite("llama4-moe.gguf"), ",".join(rpc_rig.endpoints)
    first, second = rpc_rig.buffer_types()
    budgets = {first: 20 * MIB, second: 16 * MIB}
    r = runner.invoke(app, ["fit", model, "--margin", "0MiB", "--json", "--vram", "20MiB,16MiB", "--rpc", rpc,
                            "-c", "4096", "-ct", "f16", "--verify"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    p = row["placement"]
    assert row["ctx_size"] == 4096 and "tensor_split" in row["searched"], row
    counts = [int(c) for c in p["tensor_split"]]
    assert counts == p["tensor_split"] and sum(counts) == p["n_gpu_layers"], p
    assert p["overrides"] and "override_tensor" in row["searched"], row  # a partial layer at this budget
    placement = _placement_of(row["command"]["llama-server"])
    assert "-ts" in placement and "-ot" in placement
    answer = totals(model, 4096, placement, "-ct", "f16")
    assert {d["device"]: d["total_bytes"] for d in row["devices"]} == answer
    assert all(answer[d] <= b for d, b in budgets.items()), (answer, budgets)
    v = row["verify"]
    assert v["fits"] is True and all(v["logged_bytes"][d] <= budgets[d] for d in budgets), v
    r = runner.invoke(app, ["estimate", model, "-c", "4096", "--total", "--json", "-ct", "f16", "--rpc", rpc,
                            *row["next_step"].split()])
    assert r.exit_code == 0, r.output
    est = json.loads(r.stdout)
    nxt = {dev: d["total_bytes"] for dev, d in est["total"].items()}
    assert nxt == row["next_step_total_bytes"] and any(nxt[d] > b for d, b in budgets.items()), (row, nxt)
    layer_device = est["placement"]["layer_device"]
    assert [layer_device.count(d) for d in (first, second)] == [int(c) for c in row["next_step"].split()[3].split(",")]


FREE_DEV = re.compile(r"\|\s+- (RPC\d+) \((\S+)\)\s+\|\s+\d+ = (\d+) \+")  # llama-fit-params' memory breakdown
FIT_ANSWER = re.compile(r"^-c \d+ (.*)$", re.M)


def _llama_fit(model: str, rpc: list[str], ctx: int, budget_mib: tuple[int, ...]) -> tuple[list[str], list[int]]:
    """llama.cpp's own fit (llama-fit-params, common/fit.cpp) for ``budget_mib`` per rpc-server: its
    answer's placement flags and the bytes each device had. It keeps --fit-target MiB of what it reads
    free; given free - budget, the free memory its own log says it read gives the exact limit."""
    binary = llama_tools_bin() / "llama-fit-params"
    if not binary.exists():
        pytest.skip(f"{binary} is missing (scripts/build_llama_tools.sh builds it)")
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=str(binary.parent))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(binary), "-m", model, "--rpc", ",".join(rpc), *args, "-v"], capture_output=True,
                              text=True, timeout=300, env=env)

    read = {ep: int(f) for _, ep, f in FREE_DEV.findall(run("-c", "256", "-fitt", "0").stderr)}
    target = [read[ep] - b for ep, b in zip(rpc, budget_mib)]
    out = run("-c", str(ctx), "-ctk", "f16", "-ctv", "f16", "-fitt", ",".join(map(str, target)))
    seen = {ep: int(f) for _, ep, f in FREE_DEV.findall(out.stderr)}
    answer = FIT_ANSWER.search(out.stdout)
    assert answer, out.stderr[-2000:]
    given = shlex.split(answer.group(1))  # it quotes -ot values; -ngl -1 is all
    flags = ["all" if a == "-1" and i and given[i - 1] == "-ngl" else a for i, a in enumerate(given)]
    return ["--rpc", ",".join(rpc), *flags], [(seen[ep] - t) * MIB for ep, t in zip(rpc, target)]


@pytest.mark.parametrize("name, ctx, budget_mib", [("gemma3-swa", 8192, (7, 7)), ("qwen3moe-moe.gguf", 4096, (12, 12))])
def test_at_least_as_much_on_the_devices_as_llama_fit_params(rpc_rig, name, ctx, budget_mib):
    """The same budgets per rpc-server given to llama.cpp's own fit and to ggufprof's: both answers
    within every budget by the exact prediction, and ggufprof's keeps at least as many bytes on the
    devices (llama.cpp chooses its own -ts and moves parts of layers; so does fit without a -ts)."""
    model = _suite(name) if name.endswith(".gguf") else str(fixture_path(name))
    rpc = list(rpc_rig.endpoints)
    theirs, limits = _llama_fit(model, rpc, ctx, budget_mib)
    devs = rpc_rig.buffer_types()
    vram = ",".join(f"{b}B" for b in limits)
    (row,) = fit(model, "--vram", vram, "--rpc", ",".join(rpc), "-c", str(ctx), "-ct", "f16")
    assert row["ctx_size"] == ctx, row
    ours = totals(model, ctx, _placement_of(row["command"]["llama-server"]), "-ct", "f16")
    llama = totals(model, ctx, theirs, "-ct", "f16")
    assert all(ours[d] <= lim and llama[d] <= lim for d, lim in zip(devs, limits)), (ours, llama, limits)
    assert sum(ours[d] for d in devs) >= sum(llama[d] for d in devs), (row["command"], theirs, ours, llama)


def test_last_layers_experts_pattern():
    """The LAST search's one -ot entry takes exactly the last m layers' expert tensors (no other
    layer whose number starts the same, no dense FFN), and the search reads m back from it."""
    from ggufprof.measure.split_search import FIRST, LAST, SplitSearch, last_experts_override
    from ggufprof.memory.placement import PlacementFlags

    pattern, buft = last_experts_override(48, 3)
    assert buft == "CPU"
    hits = [f"blk.{il}.ffn_{p}_exps.weight" for il in range(48) for p in ("up", "down", "gate", "gate_up")
            if re.search(pattern, f"blk.{il}.ffn_{p}_exps.weight")]
    assert {int(h.split(".")[1]) for h in hits} == {45, 46, 47} and len(hits) == 12
    assert not re.search(pattern, "blk.4.ffn_up_exps.weight") and not re.search(pattern, "blk.46.ffn_up.weight")
    at = PlacementFlags(n_gpu_layers=-1, overrides=(("user", "CPU"),))
    for experts in (FIRST, LAST):
        search = SplitSearch(48, [], at, moe=True, judge=None, experts=experts)
        for m in (0, 1, 17, 48):
            flags = search.with_moe(search.moe_at(5), m)
            assert search.moe_count(flags) == m and flags.overrides[0] == ("user", "CPU")
            assert search.parts(flags) == 0  # a whole step: no part of a layer moved


def test_fit_keeps_the_better_of_first_and_last_layers_experts(rpc_rig):
    """For a MoE model fit searches twice (the first layers' experts on the host, -ncmoe, and the last
    ones', as llama.cpp's fit) and keeps the answer with more on the device: never less than either."""
    from ggufprof.measure.fit import Budget, Fitter
    from ggufprof.measure.split_search import FIRST, LAST, SplitSearch
    from ggufprof.memory.placement import PlacementFlags
    from ggufprof.memory.settings import KVSettings
    from ggufprof.model.model_info import load_model_info

    model, rpc = _suite("qwen3moe-moe.gguf"), rpc_rig.endpoints[0]
    dev = rpc_rig.buffer_types()[0]
    full = totals(model, 4096, ["--rpc", rpc, "-ngl", "all"])[dev]
    s = KVSettings(ctx_size=4096)
    at = PlacementFlags(n_gpu_layers=-1, rpc=(rpc,))
    fitter = Fitter(load_model_info(model), s, Budget(vram=full - 1, margin=0), at, search_placement=True)
    try:
        judge = fitter.judge(s)
        alone = {e: SplitSearch(fitter.n_layer, fitter.devices, at, moe=True, judge=judge, experts=e).solve()
                 for e in (FIRST, LAST)}
        search, best = fitter._best_split(at, True, judge)
        assert all(a is not None for a in alone.values())
        assert search.order(best.flags) == max(search.order(a.flags) for a in alone.values())
        assert search.experts == FIRST or search.order(best.flags) > search.order(alone[FIRST].flags)
    finally:
        fitter.close()


@contextlib.contextmanager
def _qwen3moe_on_two_servers(rpc_rig):
    """A placement search's fitter for qwen3moe at -c 4096 on the two rpc-servers, 16 + 24 MiB (a
    budget where each device boundary's partial layer matters), with its judge: (fitter, judge, at)."""
    from ggufprof.measure.fit import Budget, Fitter
    from ggufprof.memory.placement import PlacementFlags
    from ggufprof.memory.settings import KVSettings
    from ggufprof.model.model_info import load_model_info

    first, second = rpc_rig.buffer_types()
    s = KVSettings(ctx_size=4096)
    at = PlacementFlags(n_gpu_layers=-1, rpc=tuple(rpc_rig.endpoints))
    fitter = Fitter(load_model_info(_suite("qwen3moe-moe.gguf")), s,
                    Budget(margin=0, per_device=((first, 16 * MIB), (second, 24 * MIB))), at, search_placement=True)
    try:
        yield fitter, fitter.judge(s), at
    finally:
        fitter.close()


def test_each_device_gets_its_own_partial_layer(rpc_rig):
    """The climb leaves one part of a layer in an answer; with several devices ``shift`` gives a device
    boundary its own (the second device's first layer moved forward in part, the rest of its FFN kept
    on the second device, as llama.cpp's fit overflows to the next device) and climbs on from there.
    qwen3moe on 16 + 24 MiB: the climb alone leaves part of an expert layer on the host; the shifted
    answer holds every weight on the devices, fits by the dry run (host memory too) and its next
    step, if any, is over."""
    from ggufprof.measure.split_search import LAST, REAL, SplitSearch

    second = rpc_rig.buffer_types()[1]
    with _qwen3moe_on_two_servers(rpc_rig) as (fitter, judge, at):
        search = SplitSearch(fitter.n_layer, fitter.devices, at, moe=True, judge=judge, experts=LAST)
        climbed = search.climbed()
        found = search.solve(climbed)
        assert search.order(found.flags) > search.order(climbed[0]), (climbed[0], found.flags)
        assert judge.fits(found.flags, REAL, host=True)
        assert found.next is None or not judge.fits(found.next, REAL)
        boundary = sum(search.counts(found.flags)[:1]) - 1  # the first device's last layer
        assert any(o[1] == second and o[0].startswith(rf"blk\.{boundary}\.") for o in found.flags.overrides), found
        everything = search.on_devices(dataclasses.replace(found.flags, overrides=()))  # no weight on the host
        assert search.on_devices(found.flags) == everything > search.on_devices(climbed[0])


def test_a_guessing_judge_loads_nothing(rpc_rig):
    """fit screens its second MoE search on several devices with the guess alone (Judge.guessing): that
    search asks no dry-run load, where the same search judged by the dry run does."""
    from ggufprof.measure.split_search import FIRST, SplitSearch

    with _qwen3moe_on_two_servers(rpc_rig) as (fitter, judge, at):
        before = fitter.loads
        guessed = SplitSearch(fitter.n_layer, fitter.devices, at, moe=True, judge=judge.guessing(), experts=FIRST).solve()
        assert fitter.loads == before and guessed is not None
        SplitSearch(fitter.n_layer, fitter.devices, at, moe=True, judge=judge, experts=FIRST).solve()
        assert fitter.loads > before
