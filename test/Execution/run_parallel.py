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
  steps by their whole size, a thousand times this allowance. Elements
  whose gradient at some step was below 1e-5 of their tensor's largest, or
  within 10x of AdamW's epsilon (so rounding-sized to AdamW), may differ
  by a full step; they are counted, and their gradients are still checked
  through the moments.
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
BETA1 = 0.9  # AdamW's defaults, as loom-models --train uses them
EPS = 1e-8


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
    """Output name -> (axes per dim or None), the mesh's axis sizes, and
    output name -> the pipeline stage that writes it (the first one, for a
    parameter two stages share; 0 without pipeline stages)."""
    dump = run(["loom-dump", program])
    mesh = {}
    m = re.search(r"^mesh @\w+ \[([^\]]*)\]", dump, re.M)
    if m and m.group(1):
        for item in m.group(1).split(", "):
            name, size = item.split("=")
            mesh[name] = int(size)
    outputs, stages, stage = {}, {}, 0
    for line in dump.splitlines():
        m = re.match(r"stage (\d+)$", line)
        if m:
            stage = int(m.group(1))
            continue
        m = re.match(r'output "([^"]+)" = %\d+(?: piece @\w+ \[(.*)\])?$',
                     line)
        if not m:
            continue
        if m.group(1) in outputs:
            continue
        stages[m.group(1)] = stage
        dims = None
        if m.group(2) is not None:
            dims = [[a for a in d.strip("{}").split(", ") if a]
                    for d in re.findall(r"\{[^}]*\}", m.group(2))]
        outputs[m.group(1)] = dims
    return outputs, mesh, stages


def coords(rank, mesh):
    """Row-major coordinates of `rank` over the mesh (last axis fastest)."""
    c = {}
    for name in reversed(list(mesh)):
        c[name] = rank % mesh[name]
        rank //= mesh[name]
    return c


def assemble(name, dims, mesh, world, outdir, stage=0):
    """The whole tensor from the pieces of output `name` on the ranks of
    pipeline stage `stage`."""
    def load(rank):
        sub = outdir if rank == 0 else os.path.join(outdir, f"rank{rank}")
        return np.load(os.path.join(sub, name + ".npy"))
    ranks = [r for r in range(world)
             if coords(r, mesh).get("pp", 0) == stage]
    if dims is None:
        return load(ranks[0])
    piece = load(ranks[0])
    shape = [n * math.prod(mesh[a] for a in axes)
             for n, axes in zip(piece.shape, dims)]
    whole = np.zeros(shape, piece.dtype)
    for rank in ranks:
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
    parser.add_argument("--parallelize-options", default="",
                        help="more -loom-parallelize options, e.g. "
                             "'overlap-grad-reduce=true bucket-size=4096'")
    parser.add_argument("--same-bits-as-plain", action="store_true",
                        help="also run the plan without the extra options "
                             "and require every output of every rank to "
                             "be the same bits")
    args, flags = parser.parse_known_args()
    os.makedirs(os.path.join(args.tmp, "in"), exist_ok=True)
    step = os.path.join(args.tmp, "step.mlir")
    run(["loom-models", args.model, "--train", "-o", step] + flags)
    np.save(os.path.join(args.tmp, "in", "lr.npy"), np.float32(LR))
    np.save(os.path.join(args.tmp, "in", "step.npy"), np.int32(1))

    one = os.path.join(args.tmp, "one.loom")
    many = os.path.join(args.tmp, "parallel.loom")
    compile_step(step, [], one)
    extra = f" {args.parallelize_options}" if args.parallelize_options else ""
    compile_step(step, [f"-loom-parallelize=plan={args.plan}{extra}"], many)
    outputs, mesh, stages = shardings(many)
    world = math.prod(mesh.values()) if mesh else 1

    def train(program, name, nproc, steps=args.steps):
        out = os.path.join(args.tmp, name)
        cmd = ["loom-run", program, "--inputs", os.path.join(args.tmp, "in"),
               "--outputs", out, "--steps", str(steps), "--quiet"]
        if nproc > 1:
            cmd += ["--nproc", str(nproc), "--comm", args.comm]
        run(cmd)
        return out

    out1 = train(one, "out-one", 1)
    outn = train(many, "out-parallel", world)
    if args.parallelize_options:
        with open(many + ".mlir") as f:
            waits = f.read().count("loom.wait")
        print(f"{waits} asynchronous collectives (loom.wait) per step")
    if args.same_bits_as_plain:
        plain = os.path.join(args.tmp, "plain.loom")
        compile_step(step, [f"-loom-parallelize=plan={args.plan}"], plain)
        outp = train(plain, "out-plain", world)
        differ = []
        files = 0
        for root, _, names in os.walk(outp):
            for n in names:
                if not n.endswith(".npy"):
                    continue
                rel = os.path.relpath(os.path.join(root, n), outp)
                a = np.load(os.path.join(outp, rel))
                b = np.load(os.path.join(outn, rel))
                files += 1
                if a.dtype != b.dtype or a.shape != b.shape or \
                        a.tobytes() != b.tobytes():
                    differ.append(rel)
        if differ or files == 0:
            print(f"FAIL: with '{args.parallelize_options}' these outputs "
                  f"differ from the plain plan's: {', '.join(differ)}")
            sys.exit(1)
        print(f"same bits: {files} output files of {world} ranks with "
              f"'{args.parallelize_options}' and without")
    # The single rank's first moment after each step, for the gradient of
    # each step: g_t = (m_t - beta1 m_{t-1}) / (1 - beta1).
    firsts = [train(one, f"out-one-{t}", 1, t) for t in range(1, args.steps)]
    lr = LR
    ref = {n: np.load(os.path.join(out1, n + ".npy")).astype(np.float64)
           for n in outputs}
    got = {n: assemble(n, d, mesh, world, outn, stages[n]).astype(np.float64)
           for n, d in outputs.items()}
    # Parameters whose gradient is rounding noise, by their first moment.
    moments = {n[:-len(".exp_avg")]: np.max(np.abs(ref[n]))
               for n in outputs if n.endswith(".exp_avg")}
    loudest = max(moments.values(), default=0.0)
    noise = {p for p, m in moments.items() if m < 1e-6 * loudest}
    worst, where, failures, skipped, loose = 0.0, "", [], [], 0
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
        error = np.abs(g - r)
        if name in moments:
            # Elements whose gradient, at some step, was below 1e-5 of the
            # tensor's largest or near AdamW's epsilon: within a few thousand
            # roundings of zero, so AdamW (which divides by its own size)
            # may step them by anything up to a full step.
            quiet = np.zeros(r.shape, bool)
            previous = np.zeros(r.shape)
            for first in firsts + [out1]:
                m = np.load(os.path.join(first, name + ".exp_avg.npy"))
                grad = np.abs(m - BETA1 * previous) / (1 - BETA1)
                quiet |= grad < np.maximum(1e-5 * np.max(grad), 10 * EPS)
                previous = m
            strict = args.tolerance * scale + 1e-3 * lr * args.steps
            loose += int(np.count_nonzero(quiet & (error > strict)))
            error = np.where(quiet, np.maximum(error - lr * args.steps, 0),
                             error)
        err = float(np.max(error)) if r.size else 0.0
        if name in ("loss", "grad_norm"):
            allowed = args.tolerance * scale
        elif name in moments:
            allowed = strict
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
          f"worst relative error {worst:.1e} ({where}); {loose} parameter "
          f"elements beyond it, with a rounding-level gradient, allowed a "
          f"full step" +
          (f"; {len(skipped)} noise-gradient tensors not compared "
           f"({', '.join(sorted({s.rsplit('.exp_avg', 1)[0] for s in skipped}))})"
           if skipped else ""))
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print(f"PASS: {args.model} under {args.plan} is the single-rank step")


if __name__ == "__main__":
    main()
