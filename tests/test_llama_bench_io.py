"""llama-bench interop: export a real sweep as llama-bench JSONL, import it back, import real llama-bench output.

tests/data/llama-bench-llama-gqa.jsonl is real llama-bench output (the vendored llama.cpp, CPU):
    llama-bench -m fixtures/llama-gqa.gguf -p 64 -n 16 -r 3 -t 2 --repack 0 -ctk q8_0 -ctv q8_0 -fa 1 -o jsonl
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.results.llama_bench_io import FIELDS, import_llama_bench
from ggufprof.results.store import load_records
from ggufprof.results.schema import validate

from .archs_suite import llama_script
from .conftest import ROOT
from .edited_results import scale_tg, write_copy

SAMPLE = Path(__file__).parent / "data" / "llama-bench-llama-gqa.jsonl"
runner = CliRunner(mix_stderr=False)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(sweep_dirs, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "gqa.jsonl"
    r = invoke("export", sweep_dirs["llama-gqa"], "--format", "llama-bench", "--output", out)
    assert r.exit_code == 0, r.output
    return [json.loads(ln) for ln in out.read_text().splitlines()]


def test_export_has_llama_bench_fields_and_types(exported, sweep_dirs):
    real = json.loads(SAMPLE.read_text().splitlines()[0])
    ok = [r for r in load_records(sweep_dirs["llama-gqa"]) if r.status == "ok"]
    assert len(exported) == 2 * len(ok)  # a pp and a tg test per configuration
    for line in exported:
        theirs = [k for k in real]
        assert [k for k in line if k in real] == theirs  # llama-bench's fields, in its order
        for k in theirs:
            assert type(line[k]) is type(real[k]), (k, line[k], real[k])
        assert (line["n_prompt"] == 0) != (line["n_gen"] == 0)
        assert len(line["samples_ns"]) == len(line["samples_ts"]) == 3
    assert list(FIELDS) == [k for k in real if k not in ("samples_ns", "samples_ts")]


def readme_compare_commands() -> list[list[str]]:
    """The README's compare-llama-bench.py block (llama-bench interop), one word list per line."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    (block,) = [b for b in blocks if "compare-llama-bench.py" in b]
    return [shlex.split(line) for line in block.splitlines() if line.strip()]


def run_readme_line(words: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    """One README line, as written: ``ggufprof export ... > FILE`` (or ``>>``) through the CLI, or
    ``python .../scripts/compare-llama-bench.py ...`` with the vendored llama.cpp's script."""
    if words[0] == "ggufprof":
        *args, redirect, target = words
        assert redirect in (">", ">>"), words
        r = runner.invoke(app, args[1:])
        assert r.exit_code == 0, r.output
        with open(cwd / target, "w" if redirect == ">" else "a") as f:
            f.write(r.stdout)
        return None
    assert words[0] == "python" and words[1].endswith("scripts/compare-llama-bench.py"), words
    script = llama_script("compare-llama-bench.py")
    if not script.exists():
        pytest.fail(f"{script} is missing: run scripts/build_llama_tools.sh llama-fit-params (make archs) first, "
                    "which unpacks the vendored llama.cpp there")
    for module, package in (("git", "GitPython"), ("tabulate", "tabulate")):
        if importlib.util.find_spec(module) is None:
            pytest.fail(f"compare-llama-bench.py needs {package}: pip install -e '.[dev]'")
    return subprocess.run([sys.executable, str(script), *words[2:]], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def pipe_table(text: str) -> tuple[list[str], list[list[str]]]:
    """tabulate's 'pipe' table (the script's default output): header and rows, cells stripped."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]

    def cells(ln: str) -> list[str]:
        return [c.strip() for c in ln.strip().strip("|").split("|")]
    return cells(lines[0]), [cells(ln) for ln in lines[2:]]


def test_export_readable_by_compare_llama_bench(sweep_dirs, tmp_path, monkeypatch):
    """The README's commands, as written, on two builds: ``base`` (the shared sweep) and ``new`` (the
    same records with every tg sample halved). llama.cpp's own compare-llama-bench.py prints one row
    per llama-bench configuration and test, with both builds' mean t/s and the speedup."""
    shutil.copytree(sweep_dirs["llama-gqa"], tmp_path / "base")
    write_copy(tmp_path / "base", tmp_path / "new", scale_tg(0.5))
    monkeypatch.chdir(tmp_path)
    *exports, compare = readme_compare_commands()
    for words in exports:
        run_readme_line(words, tmp_path)
    out = run_readme_line(compare, tmp_path)
    assert out.returncode == 0, out.stderr
    base_name, new_name = compare[compare.index("-b") + 1], compare[compare.index("-c") + 1]

    # what it should print: the exports' avg_ts per build, configuration and test, averaged over what
    # llama-bench does not know (ctx_size here: 512 and 2048)
    expected: dict[tuple, dict[str, list[float]]] = {}
    for line in map(json.loads, (tmp_path / "all.jsonl").read_text().splitlines()):
        test = f"pp{line['n_prompt']}" if line["n_gen"] == 0 else f"tg{line['n_gen']}"
        test += f"@d{line['n_depth']}" if line["n_depth"] else ""
        key = (line["type_k"], line["type_v"], test)
        expected.setdefault(key, {}).setdefault(line["build_commit"], []).append(line["avg_ts"])
    assert len(expected) == 12  # 3 cache types x 2 depths x (pp, tg)

    header, rows = pipe_table(out.stdout)
    assert header[-4:] == ["Test", f"t/s {base_name}", f"t/s {new_name}", "Speedup"]
    k, v = header.index("K type"), header.index("V type")
    got = {(r[k], r[v], r[-4]): r[-3:] for r in rows}
    assert len(rows) == len(got) and set(got) == set(expected)  # one row per configuration and test
    for key, (old_ts, new_ts, speedup) in got.items():
        assert float(old_ts) == pytest.approx(statistics.fmean(expected[key][base_name]), abs=0.006), key
        assert float(new_ts) == pytest.approx(statistics.fmean(expected[key][new_name]), abs=0.006), key
        assert speedup == ("0.50" if key[2].startswith("tg") else "1.00"), key


def test_compare_llama_bench_needs_build_names_of_one_length(sweep_dirs, tmp_path):
    """Why the README gives both builds names of one length: the script cuts every build_commit to
    the shortest one's length, so ``base`` beside ``new`` becomes ``bas`` and is not found."""
    lines = []
    for build in ("base", "new"):
        r = invoke("export", sweep_dirs["llama-gqa"], "--build-commit", build)
        assert r.exit_code == 0, r.output
        lines.append(r.stdout)
    (tmp_path / "all.jsonl").write_text("".join(lines))
    out = run_readme_line(["python", "scripts/compare-llama-bench.py", "-t", "llama-bench", "-i", "all.jsonl",
                           "-b", "base", "-c", "new"], tmp_path)
    assert out.returncode == 1 and "cannot find data for baseline=base" in out.stderr, out.stderr


def test_export_import_round_trip(exported, sweep_dirs, tmp_path):
    src = tmp_path / "exported.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in exported))
    r = invoke("import", src, "--out", tmp_path / "imported")
    assert r.exit_code == 0, r.output
    back = {rec.id: rec for rec in load_records(tmp_path / "imported")}
    ok = [rec for rec in load_records(sweep_dirs["llama-gqa"]) if rec.status == "ok"]
    assert set(back) == {rec.id for rec in ok}
    for rec in ok:
        b = back[rec.id]
        assert b.settings == rec.settings
        assert b.env["source"] == "llama-bench" and b.model["sha256"] == rec.model["sha256"]
        for test in ("pp", "tg"):
            assert b.measured[test]["samples_tps"] == rec.measured[test]["samples_tps"]
        assert validate(b.to_dict()) == []


def test_import_real_llama_bench_output(tmp_path):
    summary = import_llama_bench(SAMPLE)
    assert summary.lines == 2 and summary.ignored_pg == 0
    (rec,) = summary.records  # the pp and the tg test paired into one record
    real = [json.loads(ln) for ln in SAMPLE.read_text().splitlines()]
    assert validate(rec.to_dict()) == []
    s = rec.settings
    assert (s["cache_type_k"], s["cache_type_v"], s["flash_attn"], s["threads"]) == ("q8_0", "q8_0", "on", 2)
    assert (s["n_prompt"], s["n_gen"], s["depth"], s["repetitions"], s["repack"]) == (64, 16, 0, 3, False)
    assert (s["parallel"], s["swa_full"], s["ctx_size"]) == (1, False, 64)  # llama-bench's own context rules
    assert rec.measured["pp"]["samples_tps"] == real[0]["samples_ts"]
    assert rec.measured["tg"]["samples_tps"] == real[1]["samples_ts"]
    assert rec.env["source"] == "llama-bench" and rec.env["build_commit"] == real[0]["build_commit"]
    r = invoke("import", SAMPLE, "--out", tmp_path / "lb")
    assert r.exit_code == 0 and "1 records" in r.stdout
    assert [x.id for x in load_records(tmp_path / "lb")] == [rec.id]
    assert invoke("compare", tmp_path / "lb", tmp_path / "lb").exit_code == 0


def test_import_refuses_what_is_not_llama_bench(tmp_path, sweep_dirs):
    r = invoke("import", sweep_dirs["llama-gqa"] / "results.jsonl", "--out", tmp_path / "x")
    assert r.exit_code == 2 and "not a llama-bench result" in r.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"n_prompt": 1\n')
    assert invoke("import", bad, "--out", tmp_path / "y").exit_code == 2


def test_validate_exempts_only_llama_bench_records():
    d = import_llama_bench(SAMPLE).records[0].to_dict()
    assert validate(d) == []
    d["env"]["source"] = "ggufprof"  # our own ok records still need kv, rss and the checks
    assert {p.split(":")[0] for p in validate(d)} == {"measured.kv", "measured.rss", "check.kv_exact",
                                                     "check.kv_mismatches"}
    d["env"]["source"] = "llama-bench"
    del d["measured"]["tg"]
    assert validate(d) == ["measured.tg: missing in an ok record"]
