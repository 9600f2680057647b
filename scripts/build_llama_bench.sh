#!/usr/bin/env bash
# Build llama-bench from the llama.cpp that the pinned llama-cpp-python vendors, OUTSIDE the repo
# (default ~/.cache/ggufprof/llama-bench-<version>), for scripts/bench_sweep.py's comparison.
# About 10 minutes on 2 cores. Prints the path of the binary on its last line.
# Usage: scripts/build_llama_bench.sh [VERSION] [BUILD_DIR]
set -euo pipefail
ver=${1:-$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$(dirname "$0")/../pyproject.toml")}
dir=${2:-$HOME/.cache/ggufprof/llama-bench-$ver}
bin="$dir/build/bin/llama-bench"
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  if [ ! -d "$dir/src" ]; then
    tmp=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$tmp"
    tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
    mv "$tmp"/llama_cpp_python-*/vendor/llama.cpp "$dir/src"
    rm -rf "$tmp"
  fi
  cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=ON >/dev/null
  cmake --build "$dir/build" -j"$(nproc)" --target llama-bench >/dev/null
fi
echo "$bin"
