"""Fuzzing every command with mutated GGUF headers, results lines and deployment TOML (seeded, so a
failure reproduces). Whatever the input: exit 0, 1, 2 or 3 only (errors.ExitCode); on 2 exactly one
``Error:`` line; never a traceback; nothing written outside the output directory. No case is timed:
the driver's timeout is a hang guard, never a speed limit (that a hostile header is refused without
per-layer work is asserted on the work itself, in test_hardening)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app
from ggufprof.errors import ExitCode

from .conftest import ROOT, fixture_path

runner = CliRunner(mix_stderr=False)
HANG_GUARD_PER_CASE_S = 20  # the driver's timeout: a hang guard, not a speed limit


def check_outcome(code: int, stdout: str, stderr: str, what: str) -> None:
    assert code in set(ExitCode), f"{what}: exit {code}\n{stderr[-2000:]}"
    assert "Traceback" not in stdout + stderr, f"{what}: traceback\n{stderr[-2000:]}"
    if code == 2:
        lines = [ln for ln in stderr.strip().splitlines() if not ln.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("Error: "), f"{what}: {stderr[-2000:]}"


def files_under(d: Path) -> set[Path]:
    return {p for p in d.rglob("*")}


def mutate_bytes(data: bytes, rng: random.Random, limit: int) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:  # flip a few bytes in the header
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(min(limit, len(b)))] = rng.randrange(256)
    elif kind == 1:  # a large value in a length or count field
        pos = rng.randrange(0, min(limit, len(b)) - 8)
        b[pos:pos + 8] = rng.choice([b"\xff" * 8, (2**31).to_bytes(8, "little"), (5 * 10**7).to_bytes(8, "little")])
    elif kind == 2:  # truncated
        b = b[: rng.randrange(1, min(limit, len(b)))]
    else:  # a byte range duplicated
        pos = rng.randrange(0, min(limit, len(b)))
        b[pos:pos] = b[pos: pos + rng.randint(1, 64)]
    return bytes(b)


# --- GGUF headers: through a driver process, so that even an abort inside ggml would be caught ----------

DRIVER = """
import json, sys
from typer.testing import CliRunner
from ggufprof.cli import app
r = CliRunner(mix_stderr=False)
for line in sys.stdin:
    args = json.loads(line)
    res = r.invoke(app, args)
    print(json.dumps([res.exit_code, res.stdout[-4000:], res.stderr[-4000:]]), flush=True)
"""


def test_mutated_gguf_headers(tmp_path):
    rng = random.Random(20261126)
    cases = []
    for n in range(60):
        src = fixture_path(rng.choice(["llama-gqa", "gemma3-swa", "deci-varkv"]))
        data = src.read_bytes()
        path = tmp_path / f"m{n}.gguf"
        path.write_bytes(mutate_bytes(data, rng, limit=8192))
        cmd = rng.choice([["inspect"], ["inspect", "--json"], ["estimate", "-c", "4096"], ["estimate", "--json"]])
        cases.append([cmd[0], str(path), *cmd[1:]])
    p = subprocess.run([sys.executable, "-c", DRIVER], input="".join(json.dumps(c) + "\n" for c in cases),
                       capture_output=True, text=True, timeout=HANG_GUARD_PER_CASE_S * len(cases), cwd=tmp_path)
    outcomes = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("[")]
    assert len(outcomes) == len(cases), f"the driver died at case {len(outcomes)} {cases[len(outcomes)]}: {p.stderr[-2000:]}"
    for case, (code, out, err) in zip(cases, outcomes):
        check_outcome(code, out, err, " ".join(case))
    assert sum(c == 2 for c, _, _ in outcomes) > 10  # the mutations do produce refusals


# --- results lines -----------------------------------------------------------------------------------------

def mutate_record_line(line: str, rng: random.Random) -> str:
    d = json.loads(line)
    kind = rng.randrange(6)
    if kind == 0:
        return line[: rng.randrange(len(line))]
    if kind == 1:
        return rng.choice(["[]", "42", "null", '"x"', "{}", "NaN", "{\"schema_version\": 1}"])
    if kind == 2:  # a value of the wrong type somewhere
        section = rng.choice(["settings", "predicted", "measured", "check", "model", "resolved"])
        if isinstance(d.get(section), dict) and d[section]:
            key = rng.choice(sorted(d[section]))
            d[section][key] = rng.choice(["abc", -1, None, [], {}, 10**400 if rng.random() < 0.5 else 1e308, True])
        else:
            d[section] = rng.choice(["x", 3, None])
        return json.dumps(d)
    if kind == 3:  # hostile text
        d["reason"] = rng.choice(["[/bold] x [red", "\x1b[2J", "$\\frac{1}{0}$", "<script>alert(1)</script>\n# h"])
        d["status"] = rng.choice(["failed", "skipped", "ok", "weird"])
        d.setdefault("env", {})["hostname"] = rng.choice(["a$b$", "[b]h[/b]", "h\nost"])
        return json.dumps(d)
    if kind == 4:  # samples that are not numbers
        tg = (d.get("measured") or {}).get("tg")
        if isinstance(tg, dict):
            tg["samples_tps"] = rng.choice([["x"], [float("inf")], "12", [None]])
        return json.dumps(d, allow_nan=True)
    return line.encode().decode("latin-1")[:-1] + "\xff"


@pytest.fixture(scope="module")
def small_results(sweep_dirs) -> Path:
    return sweep_dirs["llama-gqa"]


def test_mutated_results_lines(small_results, tmp_path, monkeypatch):
    rng = random.Random(7)
    base_lines = (small_results / "results.jsonl").read_text().splitlines()
    monkeypatch.chdir(tmp_path)
    for n in range(40):
        d = tmp_path / f"r{n}"
        d.mkdir()
        lines = [mutate_record_line(ln, rng) if rng.random() < 0.4 else ln for ln in base_lines]
        with open(d / "results.jsonl", "wb") as f:
            f.write("\n".join(lines).encode("utf-8", "surrogateescape") + (b"" if rng.random() < 0.3 else b"\n"))
        out = tmp_path / f"out{n}"
        for args in (["results", str(d)], ["report", str(d), "--out", str(out)],
                     ["compare", str(small_results), str(d)], ["compare", str(d), str(d), "--format", "junit"],
                     ["export", str(d), "-o", str(out / "x.jsonl")]):
            before = files_under(tmp_path)
            r = runner.invoke(app, args)
            check_outcome(r.exit_code, r.stdout, r.stderr, f"case {n}: {args}")
            new = files_under(tmp_path) - before
            assert all(out in p.parents or p == out for p in new), f"case {n}: {args} wrote {sorted(new)[:3]}"


# --- deployment TOML ---------------------------------------------------------------------------------------

GOOD = f"""[[deployment]]
name = "chat"
model = "{fixture_path('llama-gqa')}"
ctx_size = 4096
cache_type_k = "q8_0"
cache_type_v = "q8_0"
parallel = 2
flash_attn = "auto"
[deployment.limits]
max_kv_bytes = "64 MiB"
min_tg_tps = 10
"""


def mutate_toml(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines()
    kind = rng.randrange(5)
    i = rng.randrange(len(lines))
    if kind == 0:
        del lines[i]
    elif kind == 1 and "=" in lines[i]:
        key = lines[i].split("=")[0].strip()
        lines[i] = f"{key} = " + rng.choice(['"x"', "-1", "1e400", "9" * 400, "true", "[1, 2]", "{a = 1}", '"$[/b]"',
                                             '".."', '"a/b"', "nan", "inf", '"32k"'])
    elif kind == 2:
        lines.insert(i, rng.choice(["[[deployment]]", "[deployment.limits]", "x = 1", "= =", "name = 'chat'"]))
    elif kind == 3:
        return ("\n".join(lines)).encode()[: rng.randrange(len(text))]
    else:
        return "\n".join(lines).encode() + rng.choice([b"\xff\xfe", b"\x00", "é".encode("latin-1")])
    return "\n".join(lines).encode()


def test_mutated_deployment_toml(tmp_path, monkeypatch):
    rng = random.Random(11)
    monkeypatch.chdir(tmp_path)
    for n in range(60):
        path = tmp_path / f"d{n}.toml"
        path.write_bytes(mutate_toml(GOOD, rng))
        out = tmp_path / f"out{n}"
        before = files_under(tmp_path)
        r = runner.invoke(app, ["check", str(path), "--estimate-only", "--out", str(out)])
        check_outcome(r.exit_code, r.stdout, r.stderr, f"case {n}: {path.read_bytes()!r}")
        new = files_under(tmp_path) - before
        assert all(out in p.parents or p == out for p in new), f"case {n} wrote {sorted(new)[:3]}"
