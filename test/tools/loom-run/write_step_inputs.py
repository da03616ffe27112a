"""Writes the inputs of Inputs/step.mlir as .npy files into a directory."""
import os
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
arrays = {
    "x": rng.standard_normal((4, 8)),
    "w": rng.standard_normal((6, 8)) * 0.5,
    "experts": rng.standard_normal((2, 8, 8)) * 0.5,
    "m": rng.standard_normal((6, 8)) * 0.1,
    "v": rng.random((6, 8)) * 0.1,  # second moments are not negative
}
for name, value in arrays.items():
    np.save(os.path.join(out, name + ".npy"), value.astype(np.float32))
np.save(os.path.join(out, "step.npy"), np.array(3, dtype=np.int32))
