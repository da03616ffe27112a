#!/usr/bin/env python3
"""-loom-parallelize on the llama3-405b training step, from 8 to 16,384 ranks.

For each N in 1, 8, 64, 512, 2048 it builds the full 126-layer step
(`loom-models llama3-405b --train --batch N`, one row per data-parallel
rank, as dp must divide the batch) and runs
`loom-opt -loom-parallelize=plan=tp=8,sp,dp=N,zero=1 --mlir-timing`.
It prints, best of RUNS (time) and max (memory):

  - the pipeline's time: the sum of its passes in --mlir-timing's report
    (parse and print left out), and its per-pass breakdown;
  - the CPU time (user + sys) and peak RSS of the whole loom-opt process,
    from wait4();
  - the size of the per-rank output, in bytes and ops;

next to the references from the same run: the goal (2 s, 2 GiB at
tp=8,sp,dp=2048,zero=1), the same step merely parsed and printed
(`loom-opt step.mlir`), and each figure divided by the 8-rank one
(flat = 1.0). At 8 ranks dp=1: the mesh has no dp axis, so data
parallelism and ZeRO do nothing and the output is smaller.

    python3 bench/parallelize-scale.py [RUNS]     (default 3)
"""
import os
import re
import subprocess
import sys
import tempfile
import time

BIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build",
                   "bin")
DPS = [1, 8, 64, 512, 2048]
GOAL_S, GOAL_RSS = 2.0, 2 << 30


def run(args):
    """Runs a command; returns (wall s, cpu s, peak RSS bytes, stderr)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{text[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text


def passes(report):
    """The pass rows of --mlir-timing's text report: [(name, seconds)]."""
    rows = []
    for line in report.splitlines():
        m = re.match(r"\s+([\d.]+) \(\s*[\d.]+%\)\s+Loom(\w+)Pass$", line)
        if m:
            name = m.group(2)
            if any(n == name for n, _ in rows):  # the second propagation
                name += "-2"
            rows.append((name, float(m.group(1))))
    return rows


def measure(step, plan, runs):
    """loom-opt -loom-parallelize=plan=PLAN on `step`, best of `runs`."""
    opt = os.path.join(BIN, "loom-opt")
    out = step + ".out"
    r = {"in_mb": os.path.getsize(step) / 1e6}
    base = [run([opt, step, "-o", out]) for _ in range(runs)]
    r["base_s"] = min(b[0] for b in base)
    r["base_rss"] = max(b[2] for b in base)
    best = None
    for _ in range(runs):
        wall, cpu, rss, err = run(
            [opt, step, f"-loom-parallelize=plan={plan}", "--mlir-timing",
             "-o", out])
        rows = passes(err)
        total = sum(t for _, t in rows)
        r["rss"] = max(r.get("rss", 0), rss)
        if best is None or total < best[0]:
            best = (total, wall, cpu, rows)
    r["s"], r["wall"], r["cpu"], r["rows"] = best
    with open(out) as f:
        text = f.read()
    r["out_mb"] = len(text) / 1e6
    r["ops"] = len(re.findall(r'^\s*(%\S+ = )?"?loom\.', text, re.M))
    return r


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dp in DPS:
            step = os.path.join(tmp, f"step{dp}.mlir")
            subprocess.run([os.path.join(BIN, "loom-models"), "llama3-405b",
                            "--train", "--batch", str(dp), "-o", step],
                           check=True)
            res[dp] = measure(step, f"tp=8,sp,dp={dp},zero=1", runs)

    ref = res[1]
    print(f"{'ranks':>6} {'passes s':>8} {'x 8r':>5} {'cpu s':>6} "
          f"{'wall s':>6} {'RSS MiB':>7} {'x 8r':>5} {'out MB':>6} "
          f"{'ops':>6} | {'in MB':>5} {'parse+print s':>13} {'RSS MiB':>7}")
    for dp, r in res.items():
        print(f"{8 * dp:6d} {r['s']:8.3f} {r['s'] / ref['s']:5.2f} "
              f"{r['cpu']:6.2f} {r['wall']:6.2f} {r['rss'] / 2**20:7.0f} "
              f"{r['rss'] / ref['rss']:5.2f} {r['out_mb']:6.2f} "
              f"{r['ops']:6d} | {r['in_mb']:5.2f} {r['base_s']:13.3f} "
              f"{r['base_rss'] / 2**20:7.0f}")
    print("\nper pass (s), best run of each:")
    names = [n for n, _ in res[2048]["rows"]]
    print(f"{'ranks':>6} " + " ".join(f"{n:>18}" for n in names))
    for dp, r in res.items():
        print(f"{8 * dp:6d} " + " ".join(f"{t:18.3f}" for _, t in r["rows"]))
    top = res[2048]
    print(f"\ngoal at 16384 ranks: passes {top['s']:.3f} s vs {GOAL_S} s "
          f"({'met' if top['s'] < GOAL_S else 'NOT met'}), peak RSS "
          f"{top['rss'] / 2**30:.2f} GiB vs 2 GiB "
          f"({'met' if top['rss'] < GOAL_RSS else 'NOT met'}); "
          f"16384 vs 8 ranks: time x{top['s'] / ref['s']:.2f}, "
          f"RSS x{top['rss'] / ref['rss']:.2f}; 16384 vs 64 ranks (the "
          f"first with a dp axis): time x{top['s'] / res[8]['s']:.2f}, "
          f"RSS x{top['rss'] / res[8]['rss']:.2f}")


if __name__ == "__main__":
    main()
