"""Compares the .npy outputs of two loom-run directories, name by name.

usage: compare_outputs.py DIR_A DIR_B [TOLERANCE]
Prints one line per output and fails if any differs by more than TOLERANCE
(default 0: identical) or exists in only one directory.
"""
import os
import sys

import numpy as np

a, b = sys.argv[1], sys.argv[2]
tol = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
names_a = sorted(f for f in os.listdir(a) if f.endswith(".npy"))
names_b = sorted(f for f in os.listdir(b) if f.endswith(".npy"))
if names_a != names_b:
    sys.exit(f"outputs differ: {names_a} vs {names_b}")
bad = 0
for name in names_a:
    x, y = np.load(os.path.join(a, name)), np.load(os.path.join(b, name))
    diff = float(np.max(np.abs(x.astype(np.float64) - y))) if x.size else 0.0
    ok = x.shape == y.shape and diff <= tol
    bad += not ok
    print(f"{name[:-4]}: {'same' if ok else 'DIFFERENT'} (max |diff| {diff:g})")
sys.exit(1 if bad else 0)
