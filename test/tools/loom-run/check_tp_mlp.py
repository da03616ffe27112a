"""Runs the tensor-parallel MLP on two ranks and compares every rank's
outputs with the unsharded computation in NumPy."""
import os
import subprocess
import sys

import numpy as np

comm, workdir = sys.argv[1], sys.argv[2]
model = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples",
                     "tensor-parallel-mlp.mlir")
rng = np.random.default_rng(7)
x = rng.standard_normal((8, 16)).astype(np.float32)
w1 = (0.2 * rng.standard_normal((64, 16))).astype(np.float32)
w2 = (0.2 * rng.standard_normal((16, 64))).astype(np.float32)

inputs = os.path.join(workdir, "in")
for rank in range(2):
    os.makedirs(os.path.join(inputs, f"rank{rank}"), exist_ok=True)
    # Column-parallel w1 (rows = hidden units), row-parallel w2 (columns).
    np.save(os.path.join(inputs, f"rank{rank}", "w1.npy"), w1[32 * rank:32 * (rank + 1)])
    np.save(os.path.join(inputs, f"rank{rank}", "w2.npy"), w2[:, 32 * rank:32 * (rank + 1)])
np.save(os.path.join(inputs, "x.npy"), x)

outputs = os.path.join(workdir, "out")
subprocess.run(["loom-run", model, "--nproc", "2", "--comm", comm,
                "--inputs", inputs, "--outputs", outputs, "--deadline", "20"],
               check=True)

h = x.astype(np.float64) @ w1.T.astype(np.float64)
a = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))
expected = a @ w2.T.astype(np.float64)
worst = 0.0
for rank in range(2):
    d = outputs if rank == 0 else os.path.join(outputs, f"rank{rank}")
    for name in ["y", "y_gathered"]:
        got = np.load(os.path.join(d, f"{name}.npy"))
        err = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
        worst = max(worst, err)
        print(f"rank {rank} {name}: max relative error {err:.2e}")
sys.exit(0 if worst < 1e-5 else 1)
