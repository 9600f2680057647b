#!/usr/bin/env bash
# Build llama.cpp tools from the llama.cpp that the pinned llama-cpp-python vendors, OUTSIDE the repo
# (default ~/.cache/ggufprof/llama-tools-<version>): llama-bench, llama-batched-bench, llama-perplexity,
# test-llama-archs (llama.cpp's architecture suite), ggml-rpc-server (tools/rpc), ... Already built targets are not rebuilt.
# ggml is built with its RPC backend (-DGGML_RPC=ON): ggml-rpc-server processes on 127.0.0.1 are the offload
# devices of the placement tests (tests/rpc_rig.py). A build directory configured before without it is
# reconfigured (and its libraries rebuilt) when CMakeCache.txt says GGML_RPC is off.
# The first build takes about 8-10 minutes on 2 cores. Prints the bin directory on its last line.
# Usage: scripts/build_llama_tools.sh TARGET... (env LLAMA_TOOLS_VERSION, LLAMA_TOOLS_DIR override)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 TARGET..." >&2; exit 2; }
ver=${LLAMA_TOOLS_VERSION:-$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' "$(dirname "$0")/../pyproject.toml")}
dir=${LLAMA_TOOLS_DIR:-$HOME/.cache/ggufprof/llama-tools-$ver}
missing=()
for t in "$@"; do [ -x "$dir/build/bin/$t" ] || missing+=("$t"); done
if [ -f "$dir/build/CMakeCache.txt" ] && ! grep -q '^GGML_RPC:BOOL=ON$' "$dir/build/CMakeCache.txt"; then
  missing=("$@")  # the libraries change too (libggml-rpc, the RPC backend registered in libggml)
fi
if [ ${#missing[@]} -gt 0 ]; then
  mkdir -p "$dir"
  if [ ! -d "$dir/src" ]; then
    tmp=$(mktemp -d)
    pip download -q --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$tmp"
    tar xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp"
    mv "$tmp"/llama_cpp_python-*/vendor/llama.cpp "$dir/src"
    rm -rf "$tmp"
  fi
  cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON \
    -DBUILD_SHARED_LIBS=ON -DGGML_RPC=ON >/dev/null
  cmake --build "$dir/build" -j"$(nproc)" --target "${missing[@]}" >/dev/null
fi
echo "$dir/build/bin"
