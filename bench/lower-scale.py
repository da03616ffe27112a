#!/usr/bin/env python3
"""How lowering scales with graph size, up to a million ops.

Generates chains of N loom ops (a residual-style mix: transposes that no
plan can run in place, in-place element-wise ops, adds that keep a value
alive across a few ops, and small matmuls), then times
`loom-opt -loom-forward-to-program` (simplify, plan memory, check the plan
by replay) and `loom-translate --loom-to-program` (emit and verify) on each,
and prints the time per op and how each doubling grows it (near-linear: a
ratio near 2).

    python3 bench/lower-scale.py [MAX_OPS]     (default 1000000)
"""
import os
import subprocess
import sys
import tempfile
import time

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                   "bin")


def graph(n):
    lines = ['func.func @chain(%x: tensor<8x8xf32> {loom.input = "x"}, '
             '%w: tensor<8x8xf32> {loom.param = "w"}) '
             '-> (tensor<8x8xf32> {loom.output = "y"}) {']
    prev = "%x"
    for i in range(n):
        kind = i % 4
        if kind == 0:
            op = f"loom.transpose {prev}, [1, 0] : tensor<8x8xf32> -> tensor<8x8xf32>"
        elif kind == 1:
            op = f"loom.silu {prev} : tensor<8x8xf32>"
        elif kind == 2:
            op = f"loom.add {prev}, %v{i - 2} : tensor<8x8xf32>"
        else:
            op = (f"loom.matmul {prev}, %w : tensor<8x8xf32>, tensor<8x8xf32> "
                  "-> tensor<8x8xf32>")
        lines.append(f"  %v{i} = {op}")
        prev = f"%v{i}"
    lines.append(f"  return {prev} : tensor<8x8xf32>")
    lines.append("}")
    return "\n".join(lines) + "\n"


def timed(cmd):
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def main():
    top = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    sizes = []
    n = 62_500
    while n <= top:
        sizes.append(n)
        n *= 2
    print(f"{'ops':>9} {'lower (s)':>10} {'us/op':>7} {'x prev':>7} "
          f"{'emit (s)':>9} {'us/op':>7} {'x prev':>7}")
    prev = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            src = os.path.join(tmp, "g.mlir")
            planned = os.path.join(tmp, "p.mlir")
            with open(src, "w") as f:
                f.write(graph(n))
            lower = timed([os.path.join(BIN, "loom-opt"), src,
                           "-loom-forward-to-program", "-o", planned])
            emit = timed([os.path.join(BIN, "loom-translate"),
                          "--loom-to-program", planned, "-o",
                          os.path.join(tmp, "g.loom")])
            growth = ("" if prev is None else
                      f"{lower / prev[0]:7.2f}"), ("" if prev is None else
                                                    f"{emit / prev[1]:7.2f}")
            print(f"{n:9d} {lower:10.2f} {lower / n * 1e6:7.2f} "
                  f"{growth[0]:>7} {emit:9.2f} {emit / n * 1e6:7.2f} "
                  f"{growth[1]:>7}", flush=True)
            prev = (lower, emit)


if __name__ == "__main__":
    main()
