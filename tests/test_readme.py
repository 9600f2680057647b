"""Every ``ggufprof ...`` command the README shows is run, so an example that drifts fails the suite.

The commands are read from the README's ```console blocks (``$ ggufprof ...`` lines, the output
shown under each) and ```sh blocks (``ggufprof ...`` lines), run in README order through typer's
CliRunner in one scratch directory (``fixtures`` and ``tests`` linked in: the README's paths are
the repository's), so a sweep's output directory serves the commands after it. Commands that need
what the repository does not hold (a model of the user's, a URL, another llama.cpp build) are listed
in SKIP with the reason. For the commands whose output is deterministic (inspect, estimate, explain,
fit) every output line the README shows must appear in the real output (whitespace aside; ``...``
lines stand for lines left out); measured commands must exit as the README says (``$ echo $?``), 0
otherwise. ``| head``, ``>`` and ``>>`` are applied as a shell would.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ggufprof.cli import app

from .conftest import ROOT
from .edited_results import scale_tg, write_copy

README = ROOT / "README.md"
# (a word in the command, why it is not run here)
SKIP = [
    ("MODEL.gguf", "a placeholder for the user's model"),
    ("model.gguf", "a placeholder for the user's model"),
    ("ORG/REPO", "a Hugging Face repository: network"),
    ("download URL", "a URL: network"),
    ("SmolLM2-135M-Instruct", "SmolLM2 is not in the repository (GGUFPROF_INTEGRATION=1 tests use it)"),
    ("qwen35-dense.gguf", "a model of llama.cpp's architecture suite, built outside the repository (make archs)"),
    ("host-a/", "placeholders for two hosts' result directories"),
    ("gate.xml", "compares the two sweeps above it, which need the user's model and llama.cpp builds"),
    ("bad.toml", "the README shows its error, not the file"),
    ("bad2.toml", "the README shows its error, not the file"),
]
DETERMINISTIC = ("inspect", "estimate", "explain", "fit")
ENV = {"COLUMNS": "100"}  # the width the README's outputs were printed at


def readme_commands(text: str) -> list[tuple[str, list[str], int]]:
    """(command line, output lines shown, exit code shown) in README order."""
    out = []
    for kind, body in re.findall(r"```(console|sh)\n(.*?)```", text, re.S):
        lines = body.splitlines()
        for i, line in enumerate(lines):
            cmd = line[2:] if kind == "console" and line.startswith("$ ggufprof ") else \
                line if kind == "sh" and line.startswith("ggufprof ") else None
            if cmd is None:
                continue
            shown, code = [], 0
            for nxt in lines[i + 1:] if kind == "console" else []:
                if nxt.startswith("$ "):
                    if nxt.strip() == "$ echo $?":
                        j = lines.index(nxt, i + 1)
                        code = int(lines[j + 1])
                    break
                shown.append(nxt)
            out.append((re.sub(r"\s+#.*$", "", cmd).strip(), shown, code))
    return out


def skip_reason(cmd: str) -> str | None:
    return next((why for word, why in SKIP if word in cmd), None)


def squash(text: str) -> str:
    return " ".join(text.split())


def run(cmd: str) -> tuple[int, str]:
    """One README line: ``| head -N``, ``> FILE`` and ``>> FILE`` as the shell applies them."""
    pipe = cmd.split(" | ", 1)
    words = shlex.split(pipe[0])
    target, mode = None, None
    if ">>" in words or ">" in words:
        k = words.index(">>") if ">>" in words else words.index(">")
        target, mode, words = words[k + 1], "a" if words[k] == ">>" else "w", words[:k]
    r = CliRunner(mix_stderr=False, env=ENV).invoke(app, words[1:])
    stdout = r.stdout
    if len(pipe) > 1:
        n = int(re.fullmatch(r"head -(\d+)", pipe[1].strip()).group(1))
        stdout = "".join(stdout.splitlines(keepends=True)[:n])
    if target:
        with open(target, mode) as f:
            f.write(stdout)
    return r.exit_code, stdout + r.stderr


def setup_for(cmd: str, here: Path) -> None:
    """What the README says was done before a command, where it does not show it as a command."""
    if cmd.startswith("ggufprof compare base new") and not (here / "base").exists():
        # the README's words: new is base with every tg sample lowered 20 % and one q8_0 block more KV
        base = write_copy(here / "ggufprof-out" / "readme-sweep", here / "base")
        q8 = [line for line in (base / "results.jsonl").read_text().splitlines() if '"q8_0"' in line][0]
        q8_id = re.search(r'"id": "([^"]+)"', q8).group(1)

        def change(d):
            scale_tg(0.8)(d)
            if d["id"] == q8_id:
                d["predicted"]["kv_bytes"] += 34

        write_copy(base, here / "new", change)
    if cmd.startswith("ggufprof check deploy.toml"):
        toml = re.search(r"```toml\n(.*?)```", README.read_text(), re.S).group(1)
        (here / "deploy.toml").write_text(toml)


def test_every_readme_command_runs(tmp_path, monkeypatch):
    commands = readme_commands(README.read_text())
    assert len(commands) >= 20 and any(c.startswith("ggufprof fit fixtures/") for c, _, _ in commands)
    for name in ("fixtures", "tests"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    ran, skipped = [], []
    for cmd, shown, code in commands:
        why = skip_reason(cmd)
        if why:
            skipped.append((cmd, why))
            continue
        setup_for(cmd, tmp_path)
        exit_code, output = run(cmd)
        assert exit_code == code, f"{cmd}: exit {exit_code}, the README says {code}\n{output[-3000:]}"
        if cmd.split()[1] in DETERMINISTIC:
            real = squash(output)
            for line in shown:
                if line.strip() and "..." not in line and "…" not in line:
                    assert squash(line) in real, f"{cmd}: the README shows\n{line}\nbut it printed\n{output}"
        ran.append(cmd)
    assert len(ran) >= 15, ran
    assert all(why for _, why in skipped)


def test_the_first_screen_answers_three_questions_with_real_output():
    """The README opens with estimate, fit and sweep on the fixture, each followed by its output."""
    text = README.read_text()
    first = text[:text.index("## The commands")]
    cmds = [c for c, shown, _ in readme_commands(first) if shown]
    assert [c.split()[1] for c in cmds][:3] == ["estimate", "fit", "sweep"]
    assert "run it: llama-server -m fixtures/gemma3-swa.gguf" in first and "KV cache: 3.31 MiB" in first
