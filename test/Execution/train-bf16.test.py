"""Compares the loss curves of an f32 and a bf16 run (loss.csv files)."""
import csv
import sys

f32, bf16 = ([float(r["loss"]) for r in csv.DictReader(open(p))]
             for p in sys.argv[1:3])
assert len(f32) == len(bf16), (len(f32), len(bf16))
diffs = [abs(a - b) for a, b in zip(f32, bf16)]
worst = max(d / a for d, a in zip(diffs, f32))
mean = sum(diffs) / len(diffs)
print(f"f32 {f32[0]:.4f} -> {f32[-1]:.4f}, bf16 {bf16[0]:.4f} -> "
      f"{bf16[-1]:.4f}; worst relative difference {worst:.4f}, mean "
      f"absolute {mean:.4f} nats")
if worst > 0.01 or mean > 0.01:
    sys.exit("bf16 does not track f32 within 1% (each step) and 0.01 nats "
             "(mean)")
print(f"{len(f32)} steps: bf16 tracks f32")
