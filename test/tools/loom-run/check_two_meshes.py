"""Runs Inputs/two-meshes.mlir on 4 ranks and checks every rank's outputs
against the groups the two meshes define (numpy, from the mesh layout)."""
import os
import subprocess
import sys

import numpy as np

comm, work = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
model = os.path.join(here, "Inputs", "two-meshes.mlir")
xs = [np.array([r + 1, 10 * (r + 1)], dtype=np.float32) for r in range(4)]
for r, x in enumerate(xs):
    os.makedirs(os.path.join(work, "in", f"rank{r}"), exist_ok=True)
    np.save(os.path.join(work, "in", f"rank{r}", "x.npy"), x)
subprocess.run(["loom-run", model, "--nproc", "4", "--comm", comm,
                "--inputs", os.path.join(work, "in"),
                "--outputs", os.path.join(work, "out"), "--quiet"], check=True)


def coords(rank, sizes):
    """Row-major coordinates, the last axis fastest."""
    out = []
    for s in reversed(sizes):
        out.append(rank % s)
        rank //= s
    return list(reversed(out))


def group(rank, sizes, axes):
    """Ranks sharing `rank`'s coordinates off `axes`, in group order."""
    c = coords(rank, sizes)
    members = []
    for r in range(4):
        d = coords(r, sizes)
        if all(d[a] == c[a] for a in range(len(sizes)) if a not in axes):
            members.append((tuple(d[a] for a in axes), r))
    return [r for _, r in sorted(members)]


tp = [sum(xs[m] for m in group(r, [2, 2], [1])) for r in range(4)]
etp = [sum(tp[m] for m in group(r, [2, 2], [0])) for r in range(4)]
# all_gather over ["ep", "etp"]: ep major, etp fastest.
# The group spans every rank, so all ranks gather the same.
order = sorted(range(4), key=lambda m: (coords(m, [2, 2])[1],
                                        coords(m, [2, 2])[0]))
gathered = [np.concatenate([xs[m] for m in order])] * 4
ok = True
for r in range(4):
    out = os.path.join(work, "out", "" if r == 0 else f"rank{r}")
    for name, want in [("tp_sum", tp[r]), ("etp_sum", etp[r]),
                       ("gathered", gathered[r])]:
        got = np.load(os.path.join(out, name + ".npy"))
        if not np.array_equal(got, want):
            ok = False
            print(f"rank {r} {name}: got {got}, want {want}")
print("all ranks match" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
