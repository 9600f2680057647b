"""``ggufprof report`` on real sweeps of the fixtures: files, tables, plots, merging hosts, refusals, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.errors import GgufprofError
from ggufprof.measure.grid import GridSpec
from ggufprof.measure.sweep import Sweep
from ggufprof.model.model_info import load_model_info
from ggufprof.present.report import write_report
from ggufprof.present.report import data as report_data

from .conftest import fixture_path

IMG = '<img src="data:image/png;base64,'


@pytest.fixture(scope="module")
def reports(sweep_dirs, tmp_path_factory):
    """One report per fixture sweep: {name: (paths, html text)}."""
    out = {}
    for name, d in sweep_dirs.items():
        paths = write_report([d], tmp_path_factory.mktemp(f"report-{name}"))
        out[name] = (paths, paths["html"].read_text(encoding="utf-8"))
    return out


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory):
    """A real sweep with one ok, two skipped (q4_0 V without flash attention) and one failed
    configuration (the worker aborts through the runner's GGUFPROF_WORKER_ABORT hook)."""
    d = tmp_path_factory.mktemp("sweep-mixed")
    spec = GridSpec(cache_types=[("f16", "f16"), ("q4_0", "q4_0")], ctx_sizes=[512, 1024], swa_full=[True],
                    parallel=[1], kv_unified=[False], flash_attn=["off"], depths=[0], threads=2, n_prompt=16,
                    n_gen=4, repetitions=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GGUFPROF_WORKER_ABORT", "ctk=f16,ctv=f16,c=1024")
        Sweep(load_model_info(fixture_path("llama-gqa")), spec, d).run()
    return d


@pytest.mark.parametrize("name", ["llama-gqa", "gemma3-swa"])
def test_html_is_one_self_contained_file_with_tables_and_plots(reports, name):
    paths, html = reports[name]
    assert paths["html"].name == "report.html" and paths["md"].exists()
    assert "q8_0/q8_0" in html and "KV ×f16" in html and "tg ×f16" in html
    assert html.count(IMG) >= 2
    assert "http://" not in html and "https://" not in html
    for section in ("Comparison by cache type", "Plots", "Checks (measurement vs model)", "Skipped and failed",
                    "Environment"):
        assert f">{section}</h2>" in html
    assert "<link rel=\"stylesheet\"" not in html and "<script" not in html


def test_llama_gqa_ratios_and_plots(reports, sweep_dirs):
    paths, html = reports["llama-gqa"]
    assert "q4_0/q4_0" in html
    assert {"png:kv-vs-ctx", "png:speed-vs-depth"} <= set(paths)
    data = report_data.load([sweep_dirs["llama-gqa"]])
    rows = report_data.comparison_rows(data)
    assert len(rows) == 12
    # llama-gqa caches 64-wide rows: a q8_0 row is 2 + 32 bytes per 32 values, q4_0 2 + 16, f16 2 per value
    for r in rows:
        expected = {("f16", "f16"): 1.0, ("q8_0", "q8_0"): 34 / 64, ("q4_0", "q4_0"): 18 / 64}[r["pair"]]
        assert r["kv_ratio"] == pytest.approx(expected)
        assert r["tg"] > 0 and r["pp"] > 0 and r["rss_peak"] > 0
        assert r["kv_measured"] == pytest.approx(r["kv_bytes"], abs=2 * 0.005 * 2**20)
    assert "0.531×" in html and "0.281×" in html
    assert "swa_full on vs off: not drawn, the model has no sliding-window layers." in html


def test_gemma_swa_and_unified_plots(reports):
    paths, html = reports["gemma3-swa"]
    assert {"png:swa-full", "png:unified"} <= set(paths)
    assert "png:kv-vs-ctx" not in paths and "png:speed-vs-depth" not in paths
    assert "the sweep has one context size (1024)" in html and "the sweep has one depth (0)" in html


@pytest.mark.parametrize("name", ["llama-gqa", "gemma3-swa"])
def test_markdown_tables_and_png_links(reports, name):
    paths, _ = reports[name]
    md = paths["md"].read_text(encoding="utf-8")
    assert "| K/V |" in md and "| q8_0/q8_0 |" in md and "KV ×f16" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 2
    for link in links:
        assert not link.startswith(("/", "http")) and (paths["md"].parent / link).is_file(), link
        assert (paths["md"].parent / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_models_are_refused_by_name(sweep_dirs, tmp_path):
    with pytest.raises(GgufprofError) as e:
        write_report([sweep_dirs["llama-gqa"], sweep_dirs["gemma3-swa"]], tmp_path)
    msg = str(e.value)
    assert "tiny llama GQA" in msg and "tiny gemma3 iSWA" in msg and "once per model" in msg
    assert not (tmp_path / "report.html").exists()


def _copy_sweep(src: Path, dst: Path, hostname: str | None = None) -> Path:
    """The same real records in another directory, optionally as measured on another host."""
    dst.mkdir()
    lines = []
    for line in (src / "results.jsonl").read_text().splitlines():
        d = json.loads(line)
        if hostname and d["env"]:
            d["env"]["hostname"] = hostname
        lines.append(json.dumps(d))
    (dst / "results.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def test_hosts_merge_into_one_report(sweep_dirs, tmp_path):
    src = sweep_dirs["llama-gqa"]
    other = _copy_sweep(src, tmp_path / "other", hostname="gpu-box")
    data = report_data.load([src, other])
    host = json.loads((src / "results.jsonl").read_text().splitlines()[0])["env"]["hostname"]
    assert data.hosts == [host, "gpu-box"]
    rows = report_data.comparison_rows(data)
    assert len(rows) == 24 and all(r["tg_ratio"] is not None for r in rows)
    paths = write_report([src, other], tmp_path / "out")
    html = paths["html"].read_text(encoding="utf-8")
    assert "<th>host</th>" in html and "gpu-box" in html and f"hosts: {host}, gpu-box" in html
    # the same host swept twice: the directories tell the rows apart
    again = report_data.load([src, _copy_sweep(src, tmp_path / "again")])
    assert again.hosts == [f"{host} ({src.name})", f"{host} (again)"]


def test_skipped_and_failed_with_reasons_and_host(mixed_sweep, tmp_path):
    data = report_data.load([mixed_sweep])
    assert (data.count("ok"), data.count("skipped"), data.count("failed")) == (1, 2, 1)
    host = data.ok[0].rec.env["hostname"]
    assert {i.host for i in data.items} == {host}  # skipped/failed records have no env: the ok one's host
    html = write_report([mixed_sweep], tmp_path)["html"].read_text(encoding="utf-8")
    assert "requires flash attention" in html and "SIGABRT" in html
    assert '<span class="skipped">2 skipped</span>' in html and '<span class="failed">1 failed</span>' in html
    # a directory without any ok record is labelled by its name
    only = tmp_path / "only-skipped"
    only.mkdir()
    (only / "results.jsonl").write_text("".join(
        ln + "\n" for ln in (mixed_sweep / "results.jsonl").read_text().splitlines()
        if json.loads(ln)["status"] == "skipped"))
    assert report_data.load([only]).hosts == ["only-skipped"]
    assert write_report([only])["html"].exists()


def test_check_failures_side_by_side(sweep_dirs, tmp_path):
    """A real record edited to disagree (the model is exact on the fixtures, so no run disagrees)."""
    d = _copy_sweep(sweep_dirs["llama-gqa"], tmp_path / "edited")
    lines = (d / "results.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["check"].update(kv_exact=False, kv_mismatches=["kv.cells: predicted 512, llama.cpp 768"],
                        rss_explained=False, rss_growth=50 * 2**20)
    lines[1] = json.dumps(rec)
    (d / "results.jsonl").write_text("\n".join(lines) + "\n")
    fails = report_data.check_failures(report_data.load([d]))
    assert len(fails) == 1 and fails[0]["rss_growth"] == 50 * 2**20
    html = write_report([d])["html"].read_text(encoding="utf-8")
    assert "kv.cells: predicted 512, llama.cpp 768" in html and "50.00 MiB" in html
    assert "1 configuration(s) disagree" in html


def test_cli_report(sweep_dirs, tmp_path):
    r = CliRunner(mix_stderr=False).invoke(app, ["report", str(sweep_dirs["gemma3-swa"]), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "report.html").exists() and (tmp_path / "out" / "report.md").exists()


def test_cli_report_refuses_a_directory_without_results(sweep_dirs, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in ([str(empty)], [str(sweep_dirs["llama-gqa"]), str(sweep_dirs["gemma3-swa"])]):
        r = CliRunner(mix_stderr=False).invoke(app, ["report", *args, "--out", str(tmp_path / "out")])
        assert r.exit_code == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
        assert "Traceback" not in r.output
    assert not (tmp_path / "out" / "report.html").exists()


def test_report_package_imports_no_pandas_or_pyplot_eagerly():
    import subprocess
    import sys

    code = ("import sys, ggufprof.present.report, ggufprof.present.report.data, ggufprof.present.report.plots, ggufprof.present.report.html; "
            "print('pandas' in sys.modules, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]



def test_headline_speed_rests_on_trusted_measurements_only(sweep_dirs, tmp_path):
    """compare's noise rule (results/noise.py) in the report: with every sample quiet the summary quotes
    the median tg ratio; with every measurement noisy, or measured once, it says "n/a (noisy)", each
    number in the big table is marked ~ (± n/a for one repetition) and the charts say why."""
    import statistics

    from ggufprof.present.report.tables import comparison_table, summary_table

    from .edited_results import calm, scale_spread, set_samples, write_copy

    quiet = write_copy(sweep_dirs["llama-gqa"], tmp_path / "quiet", calm)
    data = report_data.load([quiet])
    rows = report_data.comparison_rows(data)
    assert not any(r["noisy"] or r["tg_ratio_doubtful"] for r in rows)
    expect = statistics.median(r["tg_ratio"] for r in rows if r["pair"] == ("q4_0", "q4_0"))
    summary = {row[0]: row for row in summary_table(data).rows}
    assert summary["q4_0/q4_0"][4] == f"{expect:.2f}×"
    assert "~" not in " ".join(c for row in comparison_table(data).rows for c in row)

    def once(d):
        for t in ("pp", "tg"):
            set_samples(d["measured"][t], d["measured"][t]["samples_tps"][:1])

    for name, change in (("noisy", scale_spread), ("once", once)):
        d = write_copy(sweep_dirs["llama-gqa"], tmp_path / name, change)
        data = report_data.load([d])
        summary = summary_table(data)
        assert {row[0]: (row[3], row[4]) for row in summary.rows}["q4_0/q4_0"] == ("n/a (noisy)", "n/a (noisy)")
        assert "24 ratio(s) resting on noisy or single measurements left out" in summary.note
        table = comparison_table(data)
        tg = table.headers.index("tg t/s")
        assert all(row[tg].startswith("~") and row[tg + 1].startswith("~") for row in table.rows)
        assert all(row[tg].endswith("± n/a") for row in table.rows) == (name == "once")
        assert "fewer than 2 repetitions" in table.note
        html = write_report([d], tmp_path / f"report-{name}")["html"].read_text(encoding="utf-8")
        assert "Hatched bars, labelled ~" in html and "Hollow points" in html
        assert "± 0<" not in html and "± 0.0<" not in html


def test_a_placement_that_varies_is_a_column_in_llama_cpps_words(sweep_dirs, tmp_path):
    """Two sweeps of one model at two placements (-ncffn 1 with an -ot entry, and the default): the
    tables show the placement flags that differ, by llama.cpp's short names and spellings."""
    from ggufprof.memory.placement import PlacementFlags

    placed = tmp_path / "placed"
    spec = GridSpec(cache_types=[("f16", "f16"), ("q8_0", "q8_0")], ctx_sizes=[512], swa_full=[False], parallel=[1],
                    kv_unified=[False], flash_attn=["auto"], depths=[0], threads=2, n_prompt=16, n_gen=4, repetitions=1,
                    placement=PlacementFlags(n_cpu_ffn=1, overrides=((r"output\.weight", "CPU"),)))
    Sweep(load_model_info(fixture_path("llama-gqa")), spec, placed).run()
    data = report_data.load([sweep_dirs["llama-gqa"], placed])
    assert {"overrides", "n_cpu_ffn"} <= set(data.varying) and "tensor_split" not in data.varying
    md = write_report([sweep_dirs["llama-gqa"], placed], tmp_path / "report")["md"].read_text(encoding="utf-8")
    header = next(ln for ln in md.splitlines() if "| ctx |" in ln)  # the table of every configuration
    assert "| ot | ncffn |" in header, header
    assert "| output\\\\.weight=CPU | 1 |" in md and "| — | 0 |" in md, md  # markdown escapes the backslash
