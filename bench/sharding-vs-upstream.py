#!/usr/bin/env python3
"""Sharding propagation + partitioning: Loom against upstream MLIR's shard dialect.

The same program twice: a chain of BLOCKS (default 126) Megatron MLP blocks,
x -> matmul by a column-parallel weight -> gelu -> matmul by a row-parallel
weight -> next block, on 8-way tensor parallelism, the weights seeded and
everything else propagated.

  (a) loom: `loom.mesh @world <tp = 8>`, seeds as `loom.sharding` on the
      weight arguments, `loom-opt -loom-propagate-sharding -loom-partition`;
  (b) upstream: `shard.grid @world(shape = 8)`, `linalg.matmul`, gelu as a
      `linalg.generic` of `math.erf`, the weights annotated with
      `shard.sharding` + `shard.shard ... annotate_for_users`,
      `mlir-opt --pass-pipeline='builtin.module(func.func(
      sharding-propagation,shard-partition))'` (LLVM 22).

It prints, for each, best of RUNS: the two passes' time from --mlir-timing
(parse and print left out) and the whole process's wall time, their ratio
(upstream / loom), and the collectives per block in each output (goal: one
all-reduce per block, Loom at least as fast).

    python3 bench/sharding-vs-upstream.py [RUNS] [BLOCKS]   (default 10 126)
"""
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
LOOM_OPT = os.path.join(ROOT, "build", "bin", "loom-opt")
MLIR_OPT = "/usr/lib/llvm-22/bin/mlir-opt"
T, H, F = 64, 1024, 4096  # tokens, hidden, ffn: shapes only, never run


def loom_chain(n):
    w1 = f'tensor<{H}x{F}xf32> {{loom.sharding = #loom.sharding<@world, [{{}}, {{"tp"}}]>}}'
    w2 = f'tensor<{F}x{H}xf32> {{loom.sharding = #loom.sharding<@world, [{{"tp"}}, {{}}]>}}'
    args = ", ".join(f"%w1_{i}: {w1}, %w2_{i}: {w2}" for i in range(n))
    out = ["loom.mesh @world <tp = 8>",
           f"func.func @chain(%x0: tensor<{T}x{H}xf32>, {args}) -> tensor<{T}x{H}xf32> {{"]
    for i in range(n):
        out += [f"  %h{i} = loom.matmul %x{i}, %w1_{i} : tensor<{T}x{H}xf32>, tensor<{H}x{F}xf32> -> tensor<{T}x{F}xf32>",
                f"  %a{i} = loom.gelu %h{i} : tensor<{T}x{F}xf32>",
                f"  %x{i + 1} = loom.matmul %a{i}, %w2_{i} : tensor<{T}x{F}xf32>, tensor<{F}x{H}xf32> -> tensor<{T}x{H}xf32>"]
    out += [f"  return %x{n} : tensor<{T}x{H}xf32>", "}"]
    return "\n".join(out) + "\n"


def upstream_chain(n):
    args = ", ".join(f"%w1_{i}: tensor<{H}x{F}xf32>, %w2_{i}: tensor<{F}x{H}xf32>"
                     for i in range(n))
    out = ["#id = affine_map<(i, j) -> (i, j)>",
           "shard.grid @world(shape = 8)",
           f"func.func @chain(%x0: tensor<{T}x{H}xf32>, {args}) -> tensor<{T}x{H}xf32> {{",
           "  %col = shard.sharding @world split_axes = [[], [0]] : !shard.sharding",
           "  %row = shard.sharding @world split_axes = [[0]] : !shard.sharding",
           "  %half = arith.constant 0.5 : f32",
           "  %one = arith.constant 1.0 : f32",
           "  %rsqrt2 = arith.constant 0.70710678 : f32"]
    for i in range(n):
        out += [f"  %s1_{i} = shard.shard %w1_{i} to %col annotate_for_users : tensor<{H}x{F}xf32>",
                f"  %s2_{i} = shard.shard %w2_{i} to %row annotate_for_users : tensor<{F}x{H}xf32>",
                f"  %e1_{i} = tensor.empty() : tensor<{T}x{F}xf32>",
                f"  %h{i} = linalg.matmul ins(%x{i}, %s1_{i} : tensor<{T}x{H}xf32>, tensor<{H}x{F}xf32>) outs(%e1_{i} : tensor<{T}x{F}xf32>) -> tensor<{T}x{F}xf32>",
                f"  %a{i} = linalg.generic {{indexing_maps = [#id, #id], iterator_types = [\"parallel\", \"parallel\"]}} ins(%h{i} : tensor<{T}x{F}xf32>) outs(%e1_{i} : tensor<{T}x{F}xf32>) {{",
                "  ^bb0(%v: f32, %o: f32):",
                "    %s = arith.mulf %v, %rsqrt2 : f32",
                "    %e = math.erf %s : f32",
                "    %p = arith.addf %e, %one : f32",
                "    %q = arith.mulf %v, %half : f32",
                "    %g = arith.mulf %q, %p : f32",
                "    linalg.yield %g : f32",
                f"  }} -> tensor<{T}x{F}xf32>",
                f"  %e2_{i} = tensor.empty() : tensor<{T}x{H}xf32>",
                f"  %x{i + 1} = linalg.matmul ins(%a{i}, %s2_{i} : tensor<{T}x{F}xf32>, tensor<{F}x{H}xf32>) outs(%e2_{i} : tensor<{T}x{H}xf32>) -> tensor<{T}x{H}xf32>"]
    out += [f"  return %x{n} : tensor<{T}x{H}xf32>", "}"]
    return "\n".join(out) + "\n"


def best_of(runs, cmd):
    """Best (pass seconds, wall seconds) of RUNS runs, and the output."""
    best = (float("inf"), float("inf"))
    for _ in range(runs):
        start = time.perf_counter()
        p = subprocess.run(cmd + ["--mlir-timing"], capture_output=True,
                           text=True, check=True)
        wall = time.perf_counter() - start
        rows = re.findall(r"^\s+([\d.]+) \(\s*[\d.]+%\)\s+(\S.*)$", p.stderr,
                          re.M)
        passes = sum(float(t) for t, name in rows if name not in
                     ("Parser", "Output", "Rest", "Total")
                     and not name.endswith("Pipeline"))
        best = (min(best[0], passes), min(best[1], wall))
    return best, p.stdout


def collectives(text, dialect, n):
    names = sorted(set(re.findall(rf"\b{dialect}\.(all_\w+|reduce_scatter\w*)",
                                  text)))
    return ", ".join(f"{c} {text.count(f'{dialect}.{c} ') / n:g}"
                     for c in names) or "none"


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 126
    with tempfile.TemporaryDirectory() as tmp:
        loom_src, up_src = (os.path.join(tmp, f) for f in ("l.mlir", "u.mlir"))
        with open(loom_src, "w") as f:
            f.write(loom_chain(n))
        with open(up_src, "w") as f:
            f.write(upstream_chain(n))
        loom, loom_out = best_of(runs, [LOOM_OPT, loom_src,
                                        "-loom-propagate-sharding",
                                        "-loom-partition"])
        up, up_out = best_of(runs, [MLIR_OPT, up_src, "--pass-pipeline="
                                    "builtin.module(func.func("
                                    "sharding-propagation,shard-partition))"])
    print(f"{n} Megatron MLP blocks, tp=8, best of {runs}")
    print(f"{'':10} {'passes (s)':>10} {'wall (s)':>9}  collectives per block")
    print(f"{'loom':10} {loom[0]:10.4f} {loom[1]:9.4f}  "
          f"{collectives(loom_out, 'loom', n)}")
    print(f"{'upstream':10} {up[0]:10.4f} {up[1]:9.4f}  "
          f"{collectives(up_out, 'shard', n)}")
    print(f"{'up / loom':10} {up[0] / loom[0]:10.2f} {up[1] / loom[1]:9.2f}")


if __name__ == "__main__":
    main()
