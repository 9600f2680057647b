"""The package's architecture holds: the pure core imports neither llama_cpp, typer nor rich."""

import subprocess
import sys

CORE = ["ggufprof.model.model_info", "ggufprof.model.arch_hparams", "ggufprof.memory.predict",
        "ggufprof.memory.placement", "ggufprof.results.schema", "ggufprof.results.checks", "ggufprof.results.compare",
        "ggufprof.results.deploy", "ggufprof.results.deploy_check", "ggufprof.results.store",
        "ggufprof.results.llama_bench_io", "ggufprof.measure.grid", "ggufprof.measure.llama_log",
        "ggufprof.results.quality", "ggufprof.measure.kld", "ggufprof.measure.quality_runner"]


def test_pure_core_imports_no_llama_cpp_typer_or_rich():
    code = f"import sys; import {', '.join(CORE)}; print(sorted(m for m in ('llama_cpp', 'typer', 'rich', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_is_fast_and_lazy():
    code = "import sys; import ggufprof.cli; print(sorted(m for m in ('llama_cpp', 'pandas', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
