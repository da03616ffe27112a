"""Compares the losses of two loss.csv files step by step: every step in
both, relative difference at most 1e-5 (f32 rounding of sums taken in
another order)."""
import csv
import sys

a, b = ({int(r["step"]): float(r["loss"]) for r in csv.DictReader(open(p))}
        for p in sys.argv[1:3])
if sorted(a) != sorted(b):
    sys.exit(f"steps differ: {sorted(a)} vs {sorted(b)}")
worst = max(abs(a[s] - b[s]) / abs(a[s]) for s in a)
if worst > 1e-5:
    sys.exit(f"losses differ by {worst:.2e} relative")
print(f"{len(a)} steps agree within 1e-05 (worst {worst:.1e})")
