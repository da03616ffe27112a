#!/usr/bin/env python3
"""Parallel efficiency of the mid-size training step on 2 CPU ranks.

Builds the mid-size Llama training step (`loom-models tiny-llama --layers 4
--hidden 1024 --heads 16 --kv-heads 16 --ffn 4096 --seq 512 --vocab 32000
--batch 2 --train`) and compiles it three times with loom-opt +
loom-translate, as test/Execution/run_parallel.py does: single-rank, under
plan tp=2 and under plan dp=2. Then it runs

  - the single-rank program: `loom-run one.loom --steps K`, OpenBLAS/OpenMP
    on 2 threads (OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=2);
  - each 2-rank program: `loom-run P.loom --steps K --nproc 2 --comm local`,
    1 thread per rank (OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=1);

so every run processes the same global batch (2 x 512 tokens) per step with
the same 2 threads. The time of a step is the span of the K steps in the
run's `--trace` (first instruction's start to last instruction's end, over
all ranks) / K, which leaves out start-up (loading the program, seeding the
inputs: about 4 s) and writing the outputs. Efficiency = T(1 rank, 2 threads) / T(2 ranks, 1 thread
each): 100% is the ideal (two ranks doing the work of one in the same time
with the same cores); the goal is 80%.

It prints each run's step time, best of REPEATS (default 2) repetitions of
the whole measurement, next to the single-rank reference, and the
efficiencies. Run it on an otherwise idle machine.

    python3 bench/parallel-efficiency.py [K] [REPEATS]   (default 3 2)
"""
import json
import os
import subprocess
import sys
import tempfile

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                   "bin")
MODEL = ("tiny-llama --layers 4 --hidden 1024 --heads 16 --kv-heads 16 "
         "--ffn 4096 --seq 512 --vocab 32000 --batch 2").split()


def tool(name, *args):
    subprocess.run([os.path.join(BIN, name), *args], check=True)


def step_time(program, steps, nproc):
    """Seconds per step: the span of the run's traced instructions / steps."""
    threads = str(2 // nproc)
    env = dict(os.environ, OMP_NUM_THREADS=threads,
               OPENBLAS_NUM_THREADS=threads)
    trace = program + ".trace.json"
    cmd = [os.path.join(BIN, "loom-run"), program, "--steps", str(steps),
           "--quiet", "--trace", trace]
    if nproc > 1:
        cmd += ["--nproc", str(nproc), "--comm", "local"]
    subprocess.run(cmd, env=env, check=True)
    with open(trace) as f:
        events = json.load(f)
    events = [e for e in events.get("traceEvents", events) if "dur" in e]
    span = (max(e["ts"] + e["dur"] for e in events) -
            min(e["ts"] for e in events))
    parts = {"matmul": 0.0, "other kernels": 0.0, "collectives": 0.0}
    for e in events:
        if e["pid"] == 0:  # rank 0: its compute stream and its comm stream
            part = ("collectives" if e["tid"] != 0 else "matmul"
                    if "matmul" in e["name"] else "other kernels")
            parts[part] += e["dur"] / 1e6 / steps
    return span / 1e6 / steps, parts


def compile_plan(step, plan, out, partitioned=None):
    """The program `out` from the training step `step`: single-rank (plan
    "") or under `plan` (loom-opt [-loom-parallelize] -loom-forward-to-
    program, loom-translate). With `partitioned`, the per-rank IR before
    lowering is written there as well."""
    source, passes = step, []
    if plan and partitioned:
        tool("loom-opt", step, f"-loom-parallelize=plan={plan}", "-o",
             partitioned)
        source = partitioned
    elif plan:
        passes = [f"-loom-parallelize=plan={plan}"]
    tool("loom-opt", source, *passes, "-loom-forward-to-program", "-o",
         out + ".mlir")
    tool("loom-translate", "--loom-to-program", out + ".mlir", "-o", out)
    return out


def best_step_times(runs, programs, steps, repeats, width, on_best=None):
    """{name: (s/step, parts)}: the best of `repeats` runs of each
    (name, plan, nproc) in `runs`, alternating, each printed as it ends;
    `on_best(name)` right after a run that is its best so far (its trace is
    still on disk)."""
    best = {}
    for rep in range(repeats):
        load = os.getloadavg()[0]
        for name, _, nproc in runs:
            t = step_time(programs[name], steps, nproc)
            print(f"repeat {rep + 1} (load {load:.2f}): {name:{width}} "
                  f"{t[0]:6.2f} s/step", flush=True)
            if name not in best or t[0] < best[name][0]:
                best[name] = t
                if on_best:
                    on_best(name)
    return best


def print_efficiency(runs, best, width):
    """Each run's best step time next to the first run's (the reference)."""
    ref = best[runs[0][0]][0]
    print(f"{'run':{width}} {'s/step':>7} {'reference (1 rank)':>18} "
          f"{'efficiency':>10}")
    for name, _, _ in runs:
        t = best[name][0]
        print(f"{name:{width}} {t:7.2f} {ref:18.2f} {ref / t:10.0%}")


def main():
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    runs = [("1 rank x 2 threads", "", 1), ("tp=2: 2 ranks x 1 thread",
                                           "tp=2", 2),
            ("dp=2: 2 ranks x 1 thread", "dp=2", 2)]
    with tempfile.TemporaryDirectory() as tmp:
        step = os.path.join(tmp, "step.mlir")
        tool("loom-models", *MODEL, "--train", "-o", step)
        programs = {name: compile_plan(step, plan,
                                       os.path.join(tmp, f"{plan or 'one'}.loom"))
                    for name, plan, _ in runs}
        best = best_step_times(runs, programs, k, repeats, 26)
    ref = best[runs[0][0]][0]
    print(f"\nbest of {repeats}, {k} steps each, global batch 2 x 512 tokens")
    print(f"{'run':26} {'s/step':>7} {'reference (1 rank)':>18} "
          f"{'efficiency':>10} | rank 0 per step (s): "
          + ", ".join(best[runs[0][0]][1]))
    for name, _, _ in runs:
        t, parts = best[name]
        print(f"{name:26} {t:7.2f} {ref:18.2f} {ref / t:10.0%} | "
              + " ".join(f"{v:5.2f}" for v in parts.values()))
    worst = min(ref / best[n][0] for n, _, _ in runs[1:])
    print(f"goal 80%: {'met' if worst >= 0.8 else 'NOT met'} "
          f"(lowest {worst:.0%})")


if __name__ == "__main__":
    main()
