#!/usr/bin/env python3
"""Metadata read time: ggufprof's reader (ggml's C GGUF parser via ctypes) beside gguf.GGUFReader.

Prints, for each file, the median of several reads by each and the ratio. With no paths it times
the fixtures and a synthetic GGUF with a 262,144-token vocabulary (tokens, scores, types and
500k merges, as a Gemma-3-sized tokenizer has); pass any GGUF paths to time those too.

    python scripts/bench_metadata.py [MODEL.gguf ...] [--repeat N] [--vocab N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ggufprof.model.model_info import load_model_info  # noqa: E402


def synthetic_big_vocab(path: Path, n_vocab: int) -> Path:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "gemma3")
    w.add_block_count(2)
    w.add_context_length(8192)
    w.add_embedding_length(64)
    w.add_head_count(1)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"tok{i}" for i in range(n_vocab)])
    w.add_token_scores([0.0] * n_vocab)
    w.add_token_types([1] * n_vocab)
    w.add_token_merges([f"a{i} b{i}" for i in range(2 * n_vocab)])
    w.add_tensor("token_embd.weight", np.zeros((16, 64), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=262_144, help="size of the synthetic vocabulary (0: skip it)")
    ap.add_argument("--reader-repeat", type=int, default=1, help="repetitions for gguf.GGUFReader (slow)")
    args = ap.parse_args()
    from gguf import GGUFReader

    paths = list(args.paths) or sorted((ROOT / "fixtures").glob("*.gguf"))
    tmp = tempfile.TemporaryDirectory()
    if args.vocab and not args.paths:
        print(f"writing a synthetic GGUF with a {args.vocab:,}-token vocabulary ...", flush=True)
        paths.append(synthetic_big_vocab(Path(tmp.name) / f"vocab{args.vocab}.gguf", args.vocab))

    load_model_info(paths[0])  # load libggml-base once, outside the timings
    print(f"{'file':<28} {'size':>10} {'ggufprof':>10} {'GGUFReader':>11} {'ratio':>8}")
    for p in paths:
        ours = median_time(lambda: load_model_info(p), args.repeat)
        ref = median_time(lambda: GGUFReader(p), args.reader_repeat)
        print(f"{p.name:<28} {p.stat().st_size / 2**20:>8.1f}MB {ours * 1000:>8.1f}ms {ref * 1000:>9.1f}ms "
              f"{ref / ours:>7.0f}x", flush=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
