"""Trains a zoo model's step on N CPU ranks under a parallel plan and checks
that it is the single-rank step: the loss, the gradient norm and every
updated parameter and AdamW moment, after K steps.

    run_parallel.py MODEL PLAN TMPDIR [--steps K] [--comm local|gloo]
                    [loom-models flags...]

Both programs come from the same training step (`loom-models MODEL --train`):
the single-rank one compiled as it is, the parallel one through the
`-loom-parallelize="plan=PLAN"` pipeline (apply the plan, propagate, shard
the optimizer for ZeRO, partition).
Both start from the same values: loom-run seeds every whole tensor and cuts
each rank's piece from it. Each rank writes its pieces of the parameters
and moments; they are put back together by the shardings loom-dump prints
(`output "w" = %3 piece @world [{tp}, {}]`) and compared with the
single-rank tensors.

Tolerance: f32 throughout; partial sums are added in another order across
ranks (a tensor-parallel matmul sums its halves after, not during, the dot
product), so values differ by rounding, about 1e-7 relative in a gradient.
- loss and gradient norm: 1e-5 relative;
- AdamW moments: 1e-4 of each tensor's largest value. They sum the
  gradients of every step, and the gradients of steps 2 and 3 are taken at
  parameters that AdamW's rounding already moved (below): measured up to
  4e-5 with 4 ranks;
- parameters: 1e-5 of the tensor's largest value, plus 1e-3 of the
  largest step AdamW can take (lr x steps). AdamW divides each gradient by
  its own running size, so an element whose gradient is tiny moves by up to
  a full step whatever the gradient's rounding; a wrong gradient moves
  steps by their whole size, a thousand times this allowance.
A tensor whose gradient is rounding noise (k_proj.bias: softmax ignores a
shift of all scores, so its true gradient is 0) gets a full random step per
element on either side; it is reported and not compared, after checking
that its first moment is noise on both sides.
"""

import argparse
import math
import os
import re
import subprocess
import sys

import numpy as np

LR = 1e-2


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return result.stdout


def compile_step(step_mlir, passes, out):
    planned = run(["loom-opt", step_mlir] + passes +
                  ["-loom-forward-to-program"])
    with open(out + ".mlir", "w") as f:
        f.write(planned)
    run(["loom-translate", "--loom-to-program", out + ".mlir", "-o", out])


def shardings(program):
    """Output name -> (axes per dim or None), and the mesh's axis sizes."""
    dump = run(["loom-dump", program])
    mesh = {}
    m = re.search(r"^mesh @\w+ \[([^\]]*)\]", dump, re.M)
    if m and m.group(1):
        for item in m.group(1).split(", "):
            name, size = item.split("=")
            mesh[name] = int(size)
    outputs = {}
    for line in dump.splitlines():
        m = re.match(r'output "([^"]+)" = %\d+(?: piece @\w+ \[(.*)\])?$',
                     line)
        if not m:
            continue
        dims = None
        if m.group(2) is not None:
            dims = [[a for a in d.strip("{}").split(", ") if a]
                    for d in re.findall(r"\{[^}]*\}", m.group(2))]
        outputs[m.group(1)] = dims
    return outputs, mesh


def coords(rank, mesh):
    """Row-major coordinates of `rank` over the mesh (last axis fastest)."""
    c = {}
    for name in reversed(list(mesh)):
        c[name] = rank % mesh[name]
        rank //= mesh[name]
    return c


def assemble(name, dims, mesh, world, outdir):
    """The whole tensor from every rank's piece of output `name`."""
    def load(rank):
        sub = outdir if rank == 0 else os.path.join(outdir, f"rank{rank}")
        return np.load(os.path.join(sub, name + ".npy"))
    if dims is None:
        return load(0)
    piece = load(0)
    shape = [n * math.prod(mesh[a] for a in axes)
             for n, axes in zip(piece.shape, dims)]
    whole = np.zeros(shape, piece.dtype)
    for rank in range(world):
        c = coords(rank, mesh)
        p = load(rank)
        index = []
        for n, axes in zip(p.shape, dims):
            block = 0
            for a in axes:
                block = block * mesh[a] + c[a]
            index.append(slice(block * n, (block + 1) * n))
        whole[tuple(index)] = p
    return whole


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("plan")
    parser.add_argument("tmp")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--comm", default="local")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args, flags = parser.parse_known_args()
    os.makedirs(os.path.join(args.tmp, "in"), exist_ok=True)
    step = os.path.join(args.tmp, "step.mlir")
    run(["loom-models", args.model, "--train", "-o", step] + flags)
    np.save(os.path.join(args.tmp, "in", "lr.npy"), np.float32(LR))
    np.save(os.path.join(args.tmp, "in", "step.npy"), np.int32(1))

    one = os.path.join(args.tmp, "one.loom")
    many = os.path.join(args.tmp, "parallel.loom")
    compile_step(step, [], one)
    compile_step(step, [f"-loom-parallelize=plan={args.plan}"], many)
    outputs, mesh = shardings(many)
    world = math.prod(mesh.values()) if mesh else 1

    def train(program, name, nproc):
        out = os.path.join(args.tmp, name)
        cmd = ["loom-run", program, "--inputs", os.path.join(args.tmp, "in"),
               "--outputs", out, "--steps", str(args.steps), "--quiet"]
        if nproc > 1:
            cmd += ["--nproc", str(nproc), "--comm", args.comm]
        run(cmd)
        return out

    out1 = train(one, "out-one", 1)
    outn = train(many, "out-parallel", world)
    lr = LR
    ref = {n: np.load(os.path.join(out1, n + ".npy")).astype(np.float64)
           for n in outputs}
    got = {n: assemble(n, d, mesh, world, outn).astype(np.float64)
           for n, d in outputs.items()}
    # Parameters whose gradient is rounding noise, by their first moment.
    moments = {n[:-len(".exp_avg")]: np.max(np.abs(ref[n]))
               for n in outputs if n.endswith(".exp_avg")}
    loudest = max(moments.values(), default=0.0)
    noise = {p for p, m in moments.items() if m < 1e-6 * loudest}
    worst, where, failures, skipped = 0.0, "", [], []
    for name in sorted(outputs):
        r, g = ref[name], got[name]
        if r.shape != g.shape:
            failures.append(f"{name}: shape {g.shape}, expected {r.shape}")
            continue
        base = name.rsplit(".exp_avg", 1)[0]
        if base in noise:
            if name.endswith(".exp_avg") and \
                    np.max(np.abs(g)) >= 1e-6 * loudest:
                failures.append(f"{name}: a gradient where the single rank "
                                f"has none")
            skipped.append(name)
            continue
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0, 1e-30)
        err = float(np.max(np.abs(g - r))) if r.size else 0.0
        if name in ("loss", "grad_norm"):
            allowed = args.tolerance * scale
        elif name in moments:
            allowed = args.tolerance * scale + 1e-3 * lr * args.steps
        elif name.endswith(".exp_avg") or name.endswith(".exp_avg_sq"):
            allowed = 10 * args.tolerance * scale
        else:
            allowed = args.tolerance * scale
        if err / scale > worst:
            worst, where = err / scale, name
        if err > allowed:
            failures.append(f"{name}: error {err:.2e} > allowed "
                            f"{allowed:.2e}")
    split = sum(1 for d in outputs.values() if d)
    print(f"{args.model} plan {args.plan}: {world} ranks ({args.comm}), "
          f"{args.steps} steps, {len(outputs)} outputs ({split} split); "
          f"worst relative error {worst:.1e} ({where})" +
          (f"; {len(skipped)} noise-gradient tensors not compared "
           f"({', '.join(sorted({s.rsplit('.exp_avg', 1)[0] for s in skipped}))})"
           if skipped else ""))
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"PASS: {args.model} under {args.plan} is the single-rank step")


if __name__ == "__main__":
    main()
