#!/usr/bin/env python3
"""loom-sim on a compiled program against loom-sim on the model, in one run.

Compiles Llama 3 8B's training step (seq 4096, 8 microbatches of 16
sequences: 128 sequences, 524,288 tokens per step) under
`tp=8,sp,pp=4,dp=2` for 64 GPUs, then prices it twice on `h100-ib:8`:

  - `loom-sim --program`: the compiled per-rank programs replayed, each
    instruction priced by the cost model (matmul FLOPs, other kernels'
    bytes, collectives by the alpha-beta model), summed per schedule action
    and simulated with the program's own 1F1B schedule;
  - `loom-sim --model`: the analytic estimate from the model's dimensions
    and the plan (Megatron's FLOPs accounting, docs/CostModel.md) for the
    same batch shape (mbs = 8, gbs = 128: 8 microbatches); the sequence
    is not a plan key, so the model preset's 8192 is used and tokens/s is
    the comparable figure.

It also prints the compile time and the program's size. The two estimates
differ where the compiled step differs from Megatron's: its collectives
(sequence-parallel all-gathers and reduce-scatters of every norm and
projection as Loom's propagation placed them), its element-wise kernels
(each one a pass over memory), and its optimizer.

    python3 bench/loom-sim-replay.py [--bin DIR]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PLAN = "tp=8,sp,pp=4,dp=2"
CLUSTER = "h100-ib:8"


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return result.stdout


def grab(pattern, text):
    m = re.search(pattern, text, re.M)
    return m.group(1) if m else "?"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    args = parser.parse_args()
    tool = lambda name: os.path.join(args.bin, name)
    tmp = tempfile.mkdtemp(prefix="loom-sim-replay.")
    step = os.path.join(tmp, "step.mlir")
    planned = os.path.join(tmp, "planned.mlir")
    program = os.path.join(tmp, "step.loom")
    start = time.time()
    run([tool("loom-models"), "llama3-8b", "--train", "--micro-batches", "8",
         "--batch", "16", "--seq", "4096", "-o", step])
    run([tool("loom-opt"), step, f"-loom-parallelize=plan={PLAN}",
         "-loom-forward-to-program", "-o", planned])
    run([tool("loom-translate"), "--loom-to-program", planned, "-o",
         program])
    compile_s = time.time() - start
    replay = run([tool("loom-sim"), "--program", program, "--cluster",
                  CLUSTER])
    model = run([tool("loom-sim"), "--model", "llama3-8b", "--plan",
                 PLAN + ",mbs=8,gbs=128", "--cluster", CLUSTER])
    print(f"llama3-8b under {PLAN} on {CLUSTER}: compiled in "
          f"{compile_s:.1f} s, program {os.path.getsize(program) / 1e6:.1f} "
          f"MB")
    print(f"{'':<28} {'--program (compiled)':>22} {'--model (analytic)':>20}")
    rows = [
        ("stage 0 F / B (ms)",
         f"{grab(r'^stage 0 .*F ([0-9.]+) ms', replay)} / "
         f"{grab(r'^stage 0 .*B ([0-9.]+) ms', replay)}",
         f"{grab(r'^stage 0 .*F ([0-9.]+) ms', model)} / "
         f"{grab(r'^stage 0 .*B ([0-9.]+) ms', model)}"),
        ("bubble", grab(r"bubble ([0-9.]+)", replay),
         grab(r"bubble ([0-9.]+)", model)),
        ("step time", grab(r"^step time ([0-9.]+ m?s)", replay),
         grab(r"^step time ([0-9.]+ m?s)", model)),
        ("tokens/s", grab(r"^tokens/s ([0-9]+)", replay),
         grab(r"^tokens/s ([0-9]+)", model)),
    ]
    for name, a, b in rows:
        print(f"{name:<28} {a:>22} {b:>20}")
    print("the compiled memory plan per pipeline rank (bytes): " +
          ", ".join(re.findall(r"^rank \d+: arena (\d+)", replay, re.M)))


if __name__ == "__main__":
    main()
