#!/usr/bin/env bash
# Write llama.cpp's architecture suite: one tiny random model per architecture, made by llama.cpp's own
# tests/test-llama-archs.cpp (`test-llama-archs -o DIR`) from the llama.cpp the pinned llama-cpp-python
# vendors. Built outside the repo by scripts/build_llama_tools.sh (~8 min the first time, cached).
#
# Upstream skips some architectures whose *backend* tests are flaky (RWKV "hangs", embedding models
# "inconsistent results", ...), not because their models cannot be written. We add an opt-in switch
# (GGUFPROF_ALL_ARCHS, a two-line patch of arch_supported/save_models) and write those one by one;
# those the saver cannot write, or whose loading aborts, are simply absent.
#
# Usage: scripts/archs_suite.sh [DIR]   (default ~/.cache/ggufprof/archs-<version>); prints DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ver=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$here/../pyproject.toml")
out=${1:-${GGUFPROF_ARCHS_DIR:-$HOME/.cache/ggufprof/archs-$ver}}
bin=$("$here/build_llama_tools.sh" test-llama-archs | tail -n 1)
src="$bin/../../src/tests/test-llama-archs.cpp"
if ! grep -q GGUFPROF_ALL_ARCHS "$src"; then
  python3 - "$src" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("static bool arch_supported(const llm_arch arch) {\n",
              "static bool arch_supported(const llm_arch arch) {\n"
              "    if (getenv(\"GGUFPROF_ALL_ARCHS\") && arch != LLM_ARCH_CLIP && arch != LLM_ARCH_GPTJ && arch != LLM_ARCH_UNKNOWN) {\n"
              "        return true;\n    }\n", 1)
s = s.replace("if (arch == LLM_ARCH_GEMMA4 || arch == LLM_ARCH_GEMMA4_ASSISTANT) {\n            continue;",
              "if (!getenv(\"GGUFPROF_ALL_ARCHS\") && (arch == LLM_ARCH_GEMMA4 || arch == LLM_ARCH_GEMMA4_ASSISTANT)) {\n            continue;", 1)
assert s.count("GGUFPROF_ALL_ARCHS") == 2, "test-llama-archs.cpp changed: update scripts/archs_suite.sh"
open(p, "w").write(s)
PY
  cmake --build "$bin/.." --target test-llama-archs -j"$(nproc)" >/dev/null
fi
if [ ! -f "$out/.complete" ]; then
  mkdir -p "$out"
  (cd "$out" && "$bin/test-llama-archs" -o . > suite.log 2>&1)
  # the architectures upstream skips for backend reasons, one at a time (an abort costs only that one)
  for arch in $(sed -n 's/.*save_models: \(\S*\) model (\w*) is unsupported, skipping/\1/p' "$out/suite.log" | sort -u); do
    (cd "$out" && GGUFPROF_ALL_ARCHS=1 timeout 120 "$bin/test-llama-archs" -a "^${arch}\$" -o . >> extra.log 2>&1) 2>/dev/null || true
  done
  touch "$out/.complete"
fi
echo "$out"
