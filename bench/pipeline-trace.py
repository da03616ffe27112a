#!/usr/bin/env python3
"""Pipeline stages on CPU ranks: the measured idle fraction next to the
schedule simulator's prediction for the same program, in one run.

A scaled-up tiny-llama training step (4 layers, hidden 256, 8 microbatches)
is compiled under `pp=2` with each schedule (GPipe, 1F1B, ZB-H1, and
interleaved with vpp=2), run on 2 local ranks with `loom-run --trace`, and
read back from the trace's `schedule` track (one event per F, B, W, receive
wait and optimizer step of each rank, docs/Schedules.md):

  - measured idle fraction: 1 - (time in F, B and W over both ranks) /
    (2 * makespan), the makespan running from the first action's start to
    the last F/B/W's end of the last step (the optimizer after it is left
    out, as the simulator has none);
  - simulated: `loom-sim --pp 2 --microbatches 8 --schedule S --costs
    F,B,W,0` with F, B, W the measured mean durations of the step's actions
    (one uniform cost per kind: the stages' own differences, the
    embedding on the first and the head and loss on the last, are averaged
    away);
  - theory: (p - 1)/(m + p - 1) for GPipe and 1F1B, (p - 1)/(v*m + p - 1)
    interleaved, (p - 1)/(3m + p - 1) for ZB-H1 with F = B = W.

It also draws each measured timeline as an SVG (--svg-dir) with the colours
of loom-sim's: F blue, B orange, W green, waiting grey.

    python3 bench/pipeline-trace.py [--bin DIR] [--steps K] [--svg-dir DIR]
                                    [--readme-svg FILE]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
M = 8
SCHEDULES = [("gpipe", "pp=2,schedule=gpipe", 1),
             ("1f1b", "pp=2", 1),
             ("interleaved", "pp=2,vpp=2", 2),
             ("zb-h1", "pp=2,schedule=zb-h1", 1)]
COLORS = {"F": "#4e79a7", "B": "#f28e2b", "W": "#59a14f", "r": "#bab0ac"}


def run(cmd, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return result.stdout


def theory(name, p, m, v):
    if name in ("gpipe", "1f1b"):
        return (p - 1) / (m + p - 1)
    if name == "interleaved":
        return (p - 1) / (v * m + p - 1)
    return (p - 1) / (3 * m + p - 1)


def measure(trace):
    events = json.load(open(trace))["traceEvents"]
    ranks = {}
    for e in events:
        if e.get("tid") == 2 and e.get("ph") == "X":
            ranks.setdefault(e["pid"], []).append(
                {"name": e["name"], "ts": e["ts"], "end": e["ts"] + e["dur"],
                 "run": e["args"]["run"]})
    # The last step (run of the program) of each rank.
    steps = {}
    for r, spans in ranks.items():
        last = max(s["run"] for s in spans)
        steps[r] = sorted((s for s in spans if s["run"] == last),
                          key=lambda x: x["ts"])
    compute = {r: [s for s in spans if s["name"][0] in "FBW"]
               for r, spans in steps.items()}
    start = min(s["ts"] for spans in steps.values() for s in spans)
    end = max(s["end"] for spans in compute.values() for s in spans)
    busy = sum(s["end"] - s["ts"] for spans in compute.values() for s in spans)
    idle = 1 - busy / (len(steps) * (end - start))
    mean = {}
    for kind in "FBW":
        d = [s["end"] - s["ts"] for spans in compute.values() for s in spans
             if s["name"][0] == kind]
        mean[kind] = sum(d) / len(d) if d else 0.0
    return idle, mean, steps, start, end


def draw(path, title, steps, start, end):
    width, row, left = 900, 28, 60
    scale = (width - left - 10) / (end - start)
    rows = sorted(steps)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{row * len(rows) + 50}" font-family="sans-serif" '
           f'font-size="11">',
           f'<text x="{left}" y="16" font-size="13">{title}</text>']
    for i, r in enumerate(rows):
        y = 28 + i * row
        out.append(f'<text x="4" y="{y + 17}">rank {r}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{width - left - 10}" '
                   f'height="{row - 4}" fill="#eeeeee"/>')
        for s in steps[r]:
            kind = s["name"][0]
            if kind not in COLORS or s["end"] > end:
                continue
            x = left + (s["ts"] - start) * scale
            w = max((s["end"] - s["ts"]) * scale, 0.5)
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" '
                       f'height="{row - 4}" fill="{COLORS[kind]}"/>')
            m = re.match(r"[FBW]\(s(\d+),m(\d+)\)", s["name"])
            if m and w > 14:
                out.append(f'<text x="{x + 2:.1f}" y="{y + 16}" '
                           f'fill="white">{m.group(2)}</text>')
    out.append(f'<text x="{left}" y="{row * len(rows) + 44}">F blue, B '
               f'orange, W green, waiting for a peer grey; '
               f'{(end - start) / 1000:.1f} ms</text>')
    out.append("</svg>")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--svg-dir", default="")
    parser.add_argument("--readme-svg", default="",
                        help="also draw tiny-gpt (4 layers) under "
                             "pp=2,vpp=2,tp=2 on 4 ranks, the README's run")
    args = parser.parse_args()
    tool = lambda name: os.path.join(args.bin, name)
    tmp = tempfile.mkdtemp(prefix="loom-pipeline-trace.")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if args.readme_svg:
        step = os.path.join(tmp, "gpt.mlir")
        run([tool("loom-models"), "tiny-gpt", "--train", "--layers", "4",
             "--vocab", "256", "--micro-batches", "4", "-o", step])
        planned = os.path.join(tmp, "gpt-planned.mlir")
        program = os.path.join(tmp, "gpt.loom")
        run([tool("loom-opt"), step,
             "-loom-parallelize=plan=pp=2,vpp=2,tp=2",
             "-loom-forward-to-program", "-o", planned])
        run([tool("loom-translate"), "--loom-to-program", planned, "-o",
             program])
        trace = os.path.join(tmp, "gpt.json")
        run([tool("loom-run"), program, "--nproc", "4", "--steps",
             str(args.steps), "--trace", trace, "--quiet"], env=env)
        idle, _, steps, start, end = measure(trace)
        draw(args.readme_svg,
             f"tiny-gpt, pp=2, vpp=2, tp=2, 4 microbatches (interleaved "
             f"1F1B): measured on 4 CPU ranks (idle {idle:.1%})",
             steps, start, end)
    print(f"tiny-llama (4 layers, hidden 256, ffn 1024, seq 128, batch 16, "
          f"{M} microbatches) on 2 local CPU ranks, last of {args.steps} "
          f"steps")
    print(f"{'schedule':<12} {'measured idle':>13} {'simulated':>10} "
          f"{'theory':>8}   mean F / B / W (ms)")
    for name, plan, v in SCHEDULES:
        step = os.path.join(tmp, "step.mlir")
        run([tool("loom-models"), "tiny-llama", "--train", "--layers", "4",
             "--hidden", "256", "--ffn", "1024", "--heads", "8",
             "--kv-heads", "8", "--seq", "128", "--batch", "16",
             "--micro-batches", str(M), "-o", step])
        planned = os.path.join(tmp, name + ".mlir")
        program = os.path.join(tmp, name + ".loom")
        run([tool("loom-opt"), step, f"-loom-parallelize=plan={plan}",
             "-loom-forward-to-program", "-o", planned])
        run([tool("loom-translate"), "--loom-to-program", planned, "-o",
             program])
        trace = os.path.join(tmp, name + ".json")
        # One BLAS thread per rank: the two ranks have a core each, as
        # the simulator assumes (a rank in its bubble lends no core).
        run([tool("loom-run"), program, "--nproc", "2", "--steps",
             str(args.steps), "--trace", trace, "--quiet"], env=env)
        idle, mean, steps, start, end = measure(trace)
        sim_name = "interleaved" if v > 1 else name
        costs = ",".join(f"{mean[k] / 1000:.4f}" for k in "FBW") + ",0"
        cmd = [tool("loom-sim"), "--pp", "2", "--microbatches", str(M),
               "--schedule", sim_name, "--costs", costs]
        if v > 1:
            cmd[3:3] = ["--vpp", str(v)]
        out = run(cmd)
        simulated = float(re.search(r"^bubble ([0-9.]+)", out, re.M).group(1))
        print(f"{name:<12} {idle:>13.4f} {simulated:>10.4f} "
              f"{theory(name, 2, M, v):>8.4f}   "
              f"{mean['F'] / 1000:.2f} / {mean['B'] / 1000:.2f} / "
              f"{mean['W'] / 1000:.2f}")
        if args.svg_dir:
            draw(os.path.join(args.svg_dir, f"measured-{name}-pp2.svg"),
                 f"{name}, pp=2, m={M}: measured on 2 CPU ranks "
                 f"(idle {idle:.1%}, simulated {simulated:.1%})",
                 steps, start, end)


if __name__ == "__main__":
    main()
