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


def check_outcome(code: int, stdout: str, stderr: str, what: str, exception: BaseException | None = None) -> None:
    """``exception``: what CliRunner caught (it prints no traceback): only SystemExit, the exit code."""
    assert code in set(ExitCode), f"{what}: exit {code}\n{stderr[-2000:]}"
    assert "Traceback" not in stdout + stderr, f"{what}: traceback\n{stderr[-2000:]}"
    assert exception is None or isinstance(exception, SystemExit), f"{what}: {exception!r}"
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
            check_outcome(r.exit_code, r.stdout, r.stderr, f"case {n}: {args}", r.exception)
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
        check_outcome(r.exit_code, r.stdout, r.stderr, f"case {n}: {path.read_bytes()!r}", r.exception)
        new = files_under(tmp_path) - before
        assert all(out in p.parents or p == out for p in new), f"case {n} wrote {sorted(new)[:3]}"


# --- record shapes: every field a reader uses x wrong types, non-finite numbers, null ----------------------

from ggufprof.results import schema  # noqa: E402
from ggufprof.results.store import Unreadable, read_lines  # noqa: E402

WRONG = [None, "x", "NaN", "", [], {}, True, False, -1, 0, 1.5, 2**64, 1e308, [1e308], [0], ["x"], [None], {"a": 1},
         {"a": [None]}]
NOT_JSON = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"]  # Python's json reads these; a record never holds them
FILLED = {  # blocks null in the sweep's records, filled (validly) so that their fields can be mutated
    "quality": {"cache_type_k": "f16", "cache_type_v": "f16", "kld_mean": 0.0, "kld_p99": 0.0, "top1_agreement": 1.0,
                "ppl": 10.0, "ppl_base": 10.0, "delta_ppl": 0.0, "n_ctx": 512, "n_chunks": 2, "n_scored": 500,
                "text": {"sha256": "ab"}, "by_position": [{"first": 256, "last": 510, "n": 9, "kld_mean": 0.0,
                                                           "top1_agreement": 1.0}]},
    "env.gpu": {"gpus": ["GPU"], "memory_total": [1 << 30], "driver": "1", "cuda": "12.4"},
    "measured.vram": {"after_init_process": 1, "after_load_process": 2, "after_context_process": 3,
                      "after_warmup_process": 4},
}


def field_paths(fields: dict, prefix: str = "") -> list[str]:
    """Every field of a schema spec as a dotted path; a list's or a map's items as ``.0``."""
    out = []
    for key, spec in fields.items():
        path = prefix + key
        out.append(path)
        while isinstance(spec, (schema.ListOf, schema.MapOf)):
            spec = spec.item if isinstance(spec, schema.ListOf) else spec.value
            path += ".0"
            out.append(path)
        if isinstance(spec, schema.Block):
            out += field_paths(spec.fields, path + ".")
    return out


def put(d: dict, path: str, value: object) -> None:
    """Set the field at ``path``, making the objects and lists on the way."""
    *parents, last = path.split(".")
    node = d
    for key in parents:
        nxt = node[int(key)] if isinstance(node, list) else node.get(key)
        if not isinstance(nxt, (dict, list)):
            nxt = [{}] if key in ("caches", "samples_noise", "by_position") else {}
            node[key] = nxt
        if isinstance(nxt, list) and not nxt:
            nxt.append({})
        node = nxt
    if isinstance(node, list):
        node[int(last) if node else 0:] = [value]
    else:
        node[last] = value


def mutated_lines(base: str) -> list[tuple[str, str]]:
    """(path, line) for every field x every wrong value, and the non-JSON numbers in raw text."""
    out = []
    for path in field_paths(schema.RECORD):
        for value in WRONG:
            d = json.loads(base)
            for block, filled in FILLED.items():
                if path.startswith(block + "."):
                    put(d, block, json.loads(json.dumps(filled)))
            put(d, path, value)
            out.append((path, json.dumps(d)))
        for raw in NOT_JSON:
            d = json.loads(base)
            put(d, path, "@RAW@")
            out.append((path, json.dumps(d).replace('"@RAW@"', raw)))
    return out


def test_validation_refuses_what_readers_cannot_use(small_results):
    """What crashed every reader before (issue 18), each refused with the field named."""
    rec = json.loads((small_results / "results.jsonl").read_text().splitlines()[0])
    assert schema.validate(rec) == []

    def problems(path: str, value: object) -> list[str]:
        d = json.loads(json.dumps(rec))
        put(d, path, value)
        return schema.validate(d)

    assert problems("measured", None) == ["measured: null where an object goes"]
    assert problems("check", None) == ["check: null where an object goes"]
    assert problems("measured.tg.samples_tps", [1e308])[0].startswith(
        "measured.tg.samples_tps[0]: expected a number of tokens/s")
    assert problems("measured.pp.samples_tps", [0.0, 0.0])[0].startswith("measured.pp.samples_tps[0]")
    assert problems("predicted.kv_bytes", "NaN") == ['predicted.kv_bytes: expected a whole number >= 0, got str "NaN"']
    assert problems("env.hostname", ["a"]) == ['env.hostname: expected a string, got list ["a"]']
    assert problems("settings.ctx_size", None) == ["settings.ctx_size: null where a whole number >= 0 goes"]
    assert problems("measured.kv.caches.0.total_mib", "NaN")[0].startswith("measured.kv.caches[0].total_mib")
    assert problems("schema_version", 3)[0].startswith("schema_version 3: written by a newer ggufprof")


def test_fast_and_named_validation_agree(small_results):
    base = (small_results / "results.jsonl").read_text().splitlines()[0]
    for path, line in mutated_lines(base):
        try:
            d = json.loads(line)
        except ValueError:
            continue
        named = schema.field_problems(d, schema.RECORD)
        assert bool(named) == (not schema._RECORD_OK(d)), (path, line[:200], named)


def test_every_reader_survives_every_record_shape(small_results, tmp_path, monkeypatch):
    """Each field of the schema x wrong types, null, non-finite and huge numbers, one line each,
    through every reader: exit codes keep their meaning (results, report, export 0; compare of a
    file with itself 2, as the readable mutations repeat one configuration), no traceback, each line refused is said
    with its number, and a rewrite (--recheck) keeps each of them byte for byte."""
    import shutil

    monkeypatch.chdir(tmp_path)
    good = (small_results / "results.jsonl").read_text().splitlines()
    cases = mutated_lines(good[0])
    d = tmp_path / "shapes"
    shutil.copytree(small_results, d, ignore=shutil.ignore_patterns("*.bak", ".ggufprof.lock", "results.jsonl"))
    # another model (model.*) is refused whole by report and --recheck: one Error line, checked below;
    # other hosts (env.hostname) are refused by compare without --force
    lines = good + [line for path, line in cases if not path.startswith("model")]
    (d / "results.jsonl").write_text("\n".join(lines) + "\n")
    problems: list[str] = []
    items = list(read_lines(d / "results.jsonl", problems))
    refused = [x.line for x in items if isinstance(x, Unreadable)]
    assert len(refused) == len(problems) > len(cases) // 2
    gqa = ["-ct", "f16,q8_0,q4_0", "-c", "512,2048", "-d", "0,256", "-p", "64", "-n", "16", "-r", "3", "-t", "2"]
    for args, codes in ((["results", str(d)], {0}), (["report", str(d), "--out", str(tmp_path / "rep")], {0}),
                        (["export", str(d), "-o", str(tmp_path / "x.jsonl")], {0}),
                        # the mutations that stay readable repeat good[0]'s configuration: refused by name
                        (["compare", str(small_results), str(d), "--format", "json", "--force"], {2}),
                        (["compare", str(d), str(d), "--format", "junit", "--force"], {2}),
                        (["sweep", str(fixture_path("llama-gqa")), "--out", str(d), *gqa, "--resume"], {0}),
                        (["sweep", str(fixture_path("llama-gqa")), "--out", str(d), *gqa, "--recheck"], {0})):
        r = runner.invoke(app, args)
        check_outcome(r.exit_code, r.stdout, r.stderr, " ".join(args[:2]), r.exception)
        assert r.exit_code in codes, (args, r.exit_code, r.stderr[-2000:])
        said = [ln for ln in r.stderr.splitlines() if "line skipped" in ln]
        assert said[0] == f"warning: {problems[0]}" and "more unreadable lines skipped" in r.stderr, args
    kept = {lines[n - 1] for n in refused}
    after = (d / "results.jsonl").read_text().splitlines()
    assert [ln for ln in after if ln in kept] == [lines[n - 1] for n in refused]  # each kept, in order, as it was
    other = tmp_path / "models"
    other.mkdir()
    (other / "results.jsonl").write_text("\n".join(good + [ln for p, ln in cases if p.startswith("model")]) + "\n")
    for args in (["results", str(other)], ["report", str(other), "--out", str(tmp_path / "rep2")],
                 ["compare", str(small_results), str(other)], ["export", str(other)]):
        r = runner.invoke(app, args)
        check_outcome(r.exit_code, r.stdout, r.stderr, " ".join(args[:2]), r.exception)


def test_schema_knows_every_setting():
    """A new RunSettings field needs its kind in schema.SETTINGS, or every new record is refused."""
    from ggufprof.memory.settings import KVSettings
    from ggufprof.results.run_settings import RunSettings

    settings = RunSettings(KVSettings(), threads=2).to_dict()
    assert set(settings) == set(schema.SETTINGS)
    assert schema.field_problems(settings, schema.SETTINGS) == [] and schema.settings_problems(settings) == []
