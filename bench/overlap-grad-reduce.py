#!/usr/bin/python3
"""Data-parallel training steps with and without --overlap-grad-reduce.

A mid-size Llama-style training step (default: `loom-models tiny-llama
--layers 4 --hidden 512 --heads 8 --kv-heads 8 --ffn 2048 --seq 256 --vocab
8000 --batch 4 --train`, 25.0M parameters, 95 MiB of f32 gradients) runs under
`--plan dp=2` on 2 ranks (`--comm gloo`: processes over loopback TCP, or
`--comm local`: threads), compiled twice: plain (one all-reduce per
gradient, all after backward) and with `-loom-overlap-grad-reduce` (buckets
of --bucket-size bytes, each all-reduced on the communication thread as
soon as its last gradient is made). Both programs run alternately in the
same invocation, --rounds times each, --steps steps per run; it prints the
best and median time per step of each, their ratio, and, from a Chrome
trace of one run of each (rank 0), per step: the time in all-reduces (on
whichever thread) and the compute thread's time blocked on them (the
synchronous all-reduces, and event_wait for the buckets).

  bench/overlap-grad-reduce.py [--comm gloo|local] [--bucket-size BYTES]
      [--steps 3] [--rounds 3] [--threads 1] [model flags...]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
WORK = os.path.join(ROOT, "build", "bench", "overlap-grad-reduce")
MODEL = ["tiny-llama", "--layers", "4", "--hidden", "512", "--heads", "8",
         "--kv-heads", "8", "--ffn", "2048", "--seq", "256", "--vocab",
         "8000", "--batch", "4"]


def run(cmd, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return result.stdout


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--comm", default="gloo")
    parser.add_argument("--bucket-size", type=int, default=16 << 20)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="OMP_NUM_THREADS per rank")
    parser.add_argument("--bin", default=BIN)
    args, model_flags = parser.parse_known_args()
    os.makedirs(os.path.join(WORK, "in"), exist_ok=True)
    step = os.path.join(WORK, "step.mlir")
    run([os.path.join(args.bin, "loom-models")] + MODEL + model_flags +
        ["--train", "-o", step])
    stats = json.loads(run([os.path.join(args.bin, "loom-models")] + MODEL +
                           model_flags + ["--stats"]))
    np.save(os.path.join(WORK, "in", "lr.npy"), np.float32(1e-4))
    np.save(os.path.join(WORK, "in", "step.npy"), np.int32(1))

    programs = {}
    for name, extra in (("plain", ""),
                        ("overlap", f" overlap-grad-reduce=true "
                                    f"bucket-size={args.bucket_size}")):
        planned = os.path.join(WORK, name + ".mlir")
        text = run([os.path.join(args.bin, "loom-opt"), step,
                    f"-loom-parallelize=plan=dp=2{extra}",
                    "-loom-forward-to-program"])
        with open(planned, "w") as f:
            f.write(text)
        program = os.path.join(WORK, name + ".loom")
        run([os.path.join(args.bin, "loom-translate"), "--loom-to-program",
             planned, "-o", program])
        programs[name] = (program, text.count("loom.wait"),
                          len(re.findall(r"loom\.all_reduce", text)))

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    def time_run(program, trace=None):
        cmd = [os.path.join(args.bin, "loom-run"), program, "--inputs",
               os.path.join(WORK, "in"), "--steps", str(args.steps),
               "--nproc", "2", "--comm", args.comm]
        if trace:
            cmd += ["--trace", trace]
        out = run(cmd, env)
        ms = float(re.search(r"in ([0-9.]+) ms", out).group(1))
        loss = re.search(r"loss = (\S+)", out).group(1)
        return ms / args.steps, loss

    times = {name: [] for name in programs}
    losses = {}
    for _ in range(args.rounds):
        for name, (program, _, _) in programs.items():
            t, loss = time_run(program)
            times[name].append(t)
            losses[name] = loss

    def async_instructions(program):
        """Instructions in the comm stream's asynchronous sections."""
        dump = run([os.path.join(args.bin, "loom-dump"), program])
        inside, ids = False, set()
        for line in dump.splitlines():
            m = re.match(r"(\d+): (.*)", line)
            if not m:
                continue
            on_comm = "stream comm" in m.group(2)
            if on_comm and "event_wait" in m.group(2):
                inside = True
            elif inside and on_comm and "event_record" in m.group(2):
                inside = False
            elif inside:
                ids.add(int(m.group(1)))
        return ids

    def trace_figures(name):
        path = os.path.join(WORK, name + ".trace.json")
        time_run(programs[name][0], path)
        async_ids = async_instructions(programs[name][0])
        with open(path) as f:
            trace = json.load(f)
        events = trace["traceEvents"] if isinstance(trace, dict) else trace
        tracks = {}
        for e in events:
            if e.get("ph") == "M" and e.get("name") == "thread_name":
                tracks[(e["pid"], e["tid"])] = e["args"]["name"]
        # Rank 0: all-reduce time; the compute thread's time blocked on
        # communication (synchronous all-reduces, waits for buckets).
        comm = wait = 0.0
        for e in events:
            if e.get("ph") != "X" or e.get("pid") != 0:
                continue
            track = tracks.get((e["pid"], e["tid"]), "")
            label = e.get("name", "")
            if label == "all_reduce":
                comm += e["dur"]
                if e["args"]["instruction"] not in async_ids:
                    wait += e["dur"]
            if track == "compute" and label == "event_wait":
                wait += e["dur"]
        return comm / args.steps / 1000, wait / args.steps / 1000

    print(f"model: {' '.join(MODEL + model_flags)} "
          f"({stats['total_params'] / 1e6:.1f}M parameters, "
          f"{stats['total_params'] * 4 / 2**20:.0f} MiB of f32 gradients)")
    print(f"plan dp=2 on 2 ranks over {args.comm}, OMP_NUM_THREADS="
          f"{args.threads}, {args.steps} steps x {args.rounds} runs each, "
          f"alternating")
    blocked = {}
    for name, (program, waits, reduces) in programs.items():
        best = min(times[name])
        median = statistics.median(times[name])
        comm, wait = trace_figures(name)
        blocked[name] = wait
        print(f"{name:8s} step best {best:8.1f} ms  median {median:8.1f} ms  "
              f"({reduces} all-reduces, {waits} asynchronous); per step: "
              f"all-reduces {comm:.1f} ms, compute blocked on them "
              f"{wait:.1f} ms; loss {losses[name]}")
    print(f"communication off the compute thread's path: "
          f"{blocked['plain'] - blocked['overlap']:.1f} ms per step (an "
          f"all-reduce's time includes waiting for the other rank to reach "
          f"it)")
    ratio = min(times["plain"]) / min(times["overlap"])
    print(f"speed-up of the best step with overlap: {ratio:.3f}x "
          f"(bucket size {args.bucket_size} bytes)")
    if losses["plain"] != losses["overlap"]:
        sys.exit(f"the losses differ: {losses}")


if __name__ == "__main__":
    main()
