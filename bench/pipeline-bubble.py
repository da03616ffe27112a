#!/usr/bin/env python3
"""Pipeline bubble: the schedule simulator against the theory, in one run.

For p in {4, 8}, m in {8, 32} and each schedule (GPipe, 1F1B, interleaved
1F1B with v = 2, ZB-H1) it runs `loom-sim --pp p [--vpp 2] --microbatches m
--schedule S --costs COSTS` and prints the simulated bubble fraction (idle
over p * makespan) next to the theory and their difference in percentage
points:

  - GPipe, 1F1B: (p - 1)/(m + p - 1)
  - interleaved: (p - 1)/(v*m + p - 1)
  - ZB-H1: about a third of 1F1B's; with F = B = W it is (p - 1)/(3m + p - 1)
    (1F1B's is printed next to it)

The goal is a difference within 2 points where compute is uniform (the
default costs 1,1,1,0: F = B = W = 1, no transfer time). Other costs show
how far the theory, which assumes them, is off.

    python3 bench/pipeline-bubble.py [--costs F,B,W,T] [--bin DIR]
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCHEDULES = [("gpipe", 1), ("1f1b", 1), ("interleaved", 2), ("zb-h1", 1)]


def theory(name, p, m, v):
    if name in ("gpipe", "1f1b"):
        return (p - 1) / (m + p - 1)
    if name == "interleaved":
        return (p - 1) / (v * m + p - 1)
    return (p - 1) / (3 * m + p - 1)


def simulate(binary, name, p, m, v, costs):
    cmd = [binary, "--pp", str(p), "--microbatches", str(m), "--schedule",
           name, "--costs", costs]
    if v > 1:
        cmd += ["--vpp", str(v)]
    out = subprocess.run(cmd, check=True, capture_output=True,
                         text=True).stdout
    match = re.search(r"^bubble ([0-9.]+) ", out, re.M)
    if not match:
        sys.exit("no bubble in the output of " + " ".join(cmd))
    return float(match.group(1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--costs", default="1,1,1,0")
    parser.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
    args = parser.parse_args()
    binary = os.path.join(args.bin, "loom-sim")
    uniform = args.costs in ("1,1,1,0", "1,1,1,0.0")
    print("costs F,B,W,T = %s%s" % (args.costs,
                                     " (uniform)" if uniform else ""))
    print("| p | m | schedule | simulated | theory | difference (points) | 1F1B theory |")
    print("|---|---|---|---|---|---|---|")
    worst = 0.0
    for p in (4, 8):
        for m in (8, 32):
            for name, v in SCHEDULES:
                sim = simulate(binary, name, p, m, v, args.costs)
                th = theory(name, p, m, v)
                diff = round(100 * (sim - th), 2) + 0.0
                worst = max(worst, abs(diff))
                label = name + (" v=%d" % v if v > 1 else "")
                print("| %d | %d | %s | %.4f | %.4f | %+.2f | %.4f |" %
                      (p, m, label, sim, th, diff, theory("1f1b", p, m, 1)))
    print("largest difference: %.2f points (goal: within 2 with uniform "
          "compute)%s" % (worst, ": met" if worst <= 2 else
                          ": not met" if uniform else ""))


if __name__ == "__main__":
    main()
