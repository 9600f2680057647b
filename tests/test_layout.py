"""The package's architecture holds: imports run one way, with no cycles, and only measure/ loads llama.cpp.

The layers, lowest first (README "How the code is laid out"):

    errors, units  ->  model  ->  memory  ->  flags  ->  results  ->  measure  ->  api  ->  present  ->  cli

A module may import its own layer and the layers below it, never above; every import counts,
function-level ones included (a lazy import that goes up or closes a cycle is still one). The only
exception is the package root's lazy ``__getattr__``, which hands out the library (api) by name.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "ggufprof"
LAYERS = ["base", "model", "memory", "flags", "results", "measure", "api", "present", "cli"]
BASE = {"ggufprof", "ggufprof.errors", "ggufprof.units"}
TOP = {"ggufprof.flags": "flags", "ggufprof.api": "api", "ggufprof.cli": "cli", "ggufprof.launch": "cli",
       "ggufprof.__main__": "cli"}


def modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        out[".".join(rel.parts).removesuffix(".__init__")] = path
    return out


def layer(module: str) -> str:
    if module in BASE:
        return "base"
    if module in TOP:
        return TOP[module]
    return module.split(".")[1]


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported ggufprof module, line, inside a function) for every import of ``module``."""
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - child.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in child.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    if target in known and target != module:
                        found.append((target, child.lineno, in_function))
                    elif base.split(".")[0] == "llama_cpp":
                        found.append(("llama_cpp", child.lineno, in_function))
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name in known and alias.name != module:
                        found.append((alias.name, child.lineno, in_function))
                    elif alias.name.split(".")[0] == "llama_cpp":
                        found.append(("llama_cpp", child.lineno, in_function))
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    return found


def graph() -> dict[str, list[tuple[str, int, bool]]]:
    mods = modules()
    return {m: imports(m, p, set(mods)) for m, p in mods.items()}


def test_every_module_has_a_layer():
    assert {layer(m) for m in modules()} <= set(LAYERS)


def test_imports_go_down_the_layers_only():
    bad = []
    for module, deps in graph().items():
        for target, line, in_function in deps:
            if target == "llama_cpp":
                continue
            if module == "ggufprof" and target == "ggufprof.api" and in_function:
                continue  # the root's lazy __getattr__: the library by name
            if LAYERS.index(layer(target)) > LAYERS.index(layer(module)):
                bad.append(f"{module}:{line} imports {target} ({layer(module)} -> {layer(target)})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_only_measure_imports_llama_cpp():
    bad = [f"{m}:{line}" for m, deps in graph().items() for t, line, _ in deps
           if t == "llama_cpp" and layer(m) != "measure"]
    assert not bad


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, or None (depth-first search, colours)."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if colour.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if colour.get(nxt) is None and (found := dfs(nxt)):
                return found
        stack.pop()
        colour[node] = 2
        return None

    for n in sorted(edges):
        if colour.get(n) is None and (found := dfs(n)):
            return found
    return None


def test_no_import_cycles_between_modules():
    edges = {m: {t for t, _, _ in deps if t != "llama_cpp"} for m, deps in graph().items()}
    # a package's __init__ importing its own submodules (present/report) is how a package is built,
    # and a submodule importing its package's __init__ for a name is not a cycle of rules
    edges = {m: {t for t in ts if not (t.startswith(m + ".") or m.startswith(t + "."))} for m, ts in edges.items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a planted cycle is found, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("module,target,expected", [
    ("ggufprof.results.compare", "ggufprof.measure.sweep", "results -> measure"),
    ("ggufprof.model.model_info", "ggufprof.memory.create", "model -> memory"),
])
def test_the_direction_check_can_fail(tmp_path, module, target, expected):
    """An upward import, planted as a function-level import, is reported with its layers."""
    assert LAYERS.index(layer(target)) > LAYERS.index(layer(module))
    src = tmp_path / "m.py"
    src.write_text(f"def f():\n    import {target}\n")
    (found,) = imports(module, src, set(modules()))
    assert found == (target, 2, True) and expected == f"{layer(module)} -> {layer(target)}"


def test_help_loads_no_heavy_module():
    """``ggufprof --help`` and a command's help print without importing llama.cpp, pandas, matplotlib
    or scipy (what would make them slow; no time is measured here)."""
    code = ("import sys; from typer.testing import CliRunner; from ggufprof.cli import app; "
            "r = [CliRunner().invoke(app, a) for a in (['--help'], ['sweep', '--help'])]; "
            "assert all(x.exit_code == 0 and 'Usage' in x.stdout for x in r), [x.output for x in r]; "
            "print(sorted(m for m in ('llama_cpp', 'pandas', 'matplotlib', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_library_facade_loads_no_llama_cpp():
    """``import ggufprof`` and its functions: llama.cpp stays in the workers."""
    code = ("import sys, ggufprof; ggufprof.estimate; ggufprof.compare; "
            "print(sorted(m for m in ('llama_cpp', 'typer', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


WORKERS = sorted(p.stem for p in (PKG / "measure").glob("*_worker.py"))
ORDER = """
import sys
seen = []
class Spy:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in seen:
            seen.append(top)
        return None
sys.meta_path.insert(0, Spy())
import importlib
importlib.import_module("ggufprof.measure." + sys.argv[1])
print(" ".join(seen))
"""


@pytest.mark.parametrize("worker", WORKERS)
def test_workers_import_llama_cpp_before_numpy(worker):
    """A process that loads llama.cpp must import llama_cpp before numpy (or anything that brings it):
    on a CUDA build, numpy loaded first made every llama_model_load_from_file segfault (measured on
    an H200). Through measure/bindings.py the worker loads llama-cpp-python's ctypes bindings only,
    never its high-level package (numpy, jinja2, chat formats: ~0.3 s of every worker's start)."""
    out = subprocess.run([sys.executable, "-c", ORDER, worker], capture_output=True, text=True, cwd=PKG.parent, check=True)
    order = out.stdout.split()
    assert "llama_cpp" in order, order
    assert "numpy" not in order or order.index("llama_cpp") < order.index("numpy"), order
    # the bindings alone (measure/bindings.py), not the package's high-level Llama and chat formats
    assert "jinja2" not in order, order
