#!/usr/bin/env python3
"""-loom-parallelize on MoE training steps with expert parallelism, up to
1,024 ranks: compile time and memory against the rank count.

  - mixtral-8x22b (56 layers, 8 experts; `loom-models mixtral-8x22b --train
    --capacity-factor 0 --batch D`: dropless, Megatron's Mixtral default,
    one row per data rank) under tp=2,sp,ep=8,cp=2,pp=4,dp=D,zero=1 for
    D = 4, 16, 64: 64 to 1,024 ranks. The experts fold over the 2 cp ranks
    and 4 of the D data-parallel ranks (the mesh splits dp into
    <dp = D/4, ep = 4>; each expert has D/4 replicas, edp), each expert's
    ffn over tp (etp = tp).
  - qwen3-30b-a3b (48 layers, 128 experts, top-8; dropless) under
    tp=4,sp,ep=16,pp=4,dp=D,zero=1 for D = 16, 32, 64: 256 to 1,024 ranks.

For each it prints, best of RUNS (time) and max (memory), what
bench/parallelize-scale.py prints for llama3-405b: the pipeline's passes
(--mlir-timing), the whole loom-opt's CPU time and peak RSS (wait4), the
per-rank output's size, and each figure divided by the smallest mesh's
(flat = 1.0), next to the reference from the same run: the step merely
parsed and printed.

    python3 bench/parallelize-moe-scale.py [RUNS]     (default 2)
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "parallelize_scale", os.path.join(HERE, "parallelize-scale.py"))
scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(scale)

# (model, loom-models flags, [(ranks, plan)])
CASES = [
    ("mixtral-8x22b", ["--capacity-factor", "0"],
     [(16 * d, f"tp=2,sp,ep=8,cp=2,pp=4,dp={d},zero=1", ["--batch", str(d)])
      for d in (4, 16, 64)]),
    ("qwen3-30b-a3b", ["--capacity-factor", "0"],
     [(16 * d, f"tp=4,sp,ep=16,pp=4,dp={d},zero=1", ["--batch", str(d)])
      for d in (16, 32, 64)]),
]


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with tempfile.TemporaryDirectory() as tmp:
        for model, flags, plans in CASES:
            results = []
            for ranks, plan, extra in plans:
                step = os.path.join(tmp, f"{model}-{ranks}.mlir")
                subprocess.run([os.path.join(scale.BIN, "loom-models"), model,
                                "--train", *flags, *extra, "-o", step],
                               check=True)
                results.append((ranks, plan, scale.measure(step, plan, runs)))
            ref = results[0][2]
            print(f"\n{model} ({' '.join(flags)}), best of {runs}:")
            print(f"{'ranks':>6} {'plan':<34} {'passes s':>8} {'x':>5} "
                  f"{'cpu s':>6} {'RSS MiB':>7} {'x':>5} {'out MB':>6} "
                  f"{'ops':>6} | {'in MB':>5} {'parse+print s':>13}")
            for ranks, plan, r in results:
                print(f"{ranks:6d} {plan:<34} {r['s']:8.3f} "
                      f"{r['s'] / ref['s']:5.2f} {r['cpu']:6.2f} "
                      f"{r['rss'] / 2**20:7.0f} {r['rss'] / ref['rss']:5.2f} "
                      f"{r['out_mb']:6.2f} {r['ops']:6d} | "
                      f"{r['in_mb']:5.2f} {r['base_s']:13.3f}")


if __name__ == "__main__":
    main()
