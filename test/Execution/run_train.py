"""Runs one compiled training step of a zoo model with loom-run and compares
it with reference_train.py.

usage:
  run_train.py [--seed N] [--micro-batches M] [--loom-run-args "ARGS"]
               [--fake-loom | --fake-mistake NAME]
               MODEL TMPDIR [LOOM-MODELS FLAGS...]
  run_train.py --compare TMPDIR_A TMPDIR_B
  run_train.py --selfcheck

The first form emits
  loom-models MODEL FLAGS --train --emit-gradients --micro-batches M
              -o TMPDIR/step.mlir,
checks that the step's arguments are the contract's (tokens/targets int32
[M·batch, seq], lr f32 0-d, step i32 0-d, every parameter and its
`.exp_avg`/`.exp_avg_sq` moments, f32), writes random inputs as
TMPDIR/inputs/<name>.npy (reference initialization, moments of each
gradient's scale, t = 3 so bias correction matters, lr = 1e-3), runs
  loom-run TMPDIR/step.mlir --inputs TMPDIR/inputs --outputs TMPDIR/outputs
           --steps 1 --quiet
and compares loss, grad_norm, <p>.grad, <p>, <p>.exp_avg and <p>.exp_avg_sq
with the float64 reference, printing each quantity's worst error against its
tolerance (TOLERANCES below says which and why). It exits non-zero when any
exceeds its tolerance.

--fake-loom skips loom-models and loom-run: the "loom outputs" come from the
reference run in float32 (every op rounded to f32); --fake-mistake NAME adds
one of reference_train.MISTAKES (e.g. wd_on_all). They test this driver's
comparison before the compiler side exists.

--compare checks that two runs had the same inputs and agree within the
tolerances (train-accumulate.test: 4 microbatches against the 4x batch).

--selfcheck tests the reference itself: every op's backward against central
finite differences, whole-model gradients likewise, AdamW against a literal
transcription of PyTorch's _single_tensor_adamw, the f32 emulation within
the tolerances, and plausible mistakes far beyond them.
"""

import argparse
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean under lit
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
import reference_train as rt  # noqa: E402

LR = 1e-3
STEP = 3

# Tolerances of the comparison (loom-run computes in f32, the reference in
# f64). The self-check's f32 emulation of the reference (every op rounded to
# f32) stays below each by 6x (exp_avg_sq) to 3000x (loss), and plausible
# mistakes exceed each by 6x (1 − β2 in f32) to 10^4x; it prints both.
TOLERANCES = {
    # |loss − ref| / ref, as the forward tests.
    "loss": 1e-5,
    # |norm − ref| / ref, against the reference's norm and against the norm
    # of loom's own .grad outputs (f32 sums over ~10^4 squares).
    "grad_norm": 1e-4,
    # max |g − ref| / scale per tensor, scale = max(max |ref|, 1% of the
    # largest |ref| of any tensor): a tensor whose true gradient is ~0
    # (k_proj.bias: softmax ignores a shift of all scores) is f32 noise.
    "grad": 1e-4,
    # The optimizer is checked on loom's own gradients and grad_norm, so
    # that only its f32 rounding remains (a few ulp):
    # max |m' − ref| / max |ref| per tensor.
    "exp_avg": 2e-6,
    # max over elements of |v' − ref| / ref (v' > 0); tight enough to see
    # 1 − β2 computed in f32 (1.3e-5).
    "exp_avg_sq": 2e-6,
    # max |p' − ref| / max |p' − p| per tensor: relative to the update,
    # since p' itself rounds to f32 at ~6e-8·|p| and lr·update ~ 1e-3.
    "param": 5e-4,
}


# ----------------------------------------------------------------------------
# Inputs and the reference
# ----------------------------------------------------------------------------

def make_inputs(cfg, micro_batches, seed):
    """Parameters (reference.py's initialization), tokens and targets
    [M·batch, seq], lr, step, and moments at each gradient's scale: exp_avg
    ~ 0.2·s·N(0, 1), exp_avg_sq ~ 0.002·s²·U(0.5, 1.5) > 0, as after a few
    steps; s is the RMS of the parameter's clipped reference gradient
    (at least 1% of all gradients' RMS), rounded to a power of two so that
    runs with different microbatching get bit-identical moments."""
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, rng)
    shape = (micro_batches * cfg.batch, cfg.seq)
    tokens = rng.integers(0, cfg.vocab, size=shape, dtype=np.int32)
    targets = rng.integers(0, cfg.vocab, size=shape, dtype=np.int32)
    _, grads = rt.loss_and_grads(cfg, params, tokens, targets, micro_batches)
    hp = rt.Hyper()
    coef = rt.clip_coefficient(rt.global_norm(grads), hp.max_norm)
    total = sum(g.size for g in grads.values())
    rms_all = rt.global_norm(grads) * coef / math.sqrt(total)
    inputs = {"tokens": tokens, "targets": targets,
              "lr": np.array(LR, dtype=np.float32),
              "step": np.array(STEP, dtype=np.int32)}
    inputs.update(params)
    for name, p in params.items():
        rms = float(np.sqrt(np.mean(np.square(grads[name] * coef))))
        s = 2.0 ** round(math.log2(max(rms, 0.01 * rms_all)))
        mn, vn = rt.state_names(name)
        inputs[mn] = (0.2 * s * rng.standard_normal(p.shape)).astype(np.float32)
        inputs[vn] = (0.002 * s * s * rng.uniform(0.5, 1.5, p.shape)
                      ).astype(np.float32)
    return inputs


def split_inputs(cfg, inputs):
    params = {n: inputs[n] for n, _ in ref.param_specs(cfg)}
    state = {}
    for n in params:
        for sn in rt.state_names(n):
            state[sn] = inputs[sn]
    return params, state


def reference_step(cfg, inputs, micro_batches, variant=None,
                   dtype=np.float64, hp=None):
    params, state = split_inputs(cfg, inputs)
    return rt.train_step(cfg, params, state, inputs["tokens"],
                         inputs["targets"], float(inputs["lr"]),
                         int(inputs["step"]), micro_batches, hp=hp,
                         variant=variant, dtype=dtype)


def expected_args(cfg, micro_batches):
    """{name: (shape, elem)} of the step's arguments."""
    ids = ((micro_batches * cfg.batch, cfg.seq), "i32")
    args = {"tokens": ids, "targets": ids, "lr": ((), "f32"),
            "step": ((), "i32")}
    for name, shape in ref.param_specs(cfg):
        args[name] = (tuple(shape), "f32")
        for sn in rt.state_names(name):
            args[sn] = (tuple(shape), "f32")
    return args


def expected_outputs(cfg):
    names = ["loss", "grad_norm"]
    for name, _ in ref.param_specs(cfg):
        names += [name + ".grad", name, *rt.state_names(name)]
    return names


# ----------------------------------------------------------------------------
# Reading the emitted step
# ----------------------------------------------------------------------------

_ARG_RE = re.compile(r"%arg(\d+): tensor<([^>]*)>\s*(\{[^}]*\})?")
_NAME_RE = re.compile(r'loom\.(\w+) = "([^"]+)"')


def _parse_type(text):
    parts = text.split("x")
    return tuple(int(p) for p in parts[:-1]), parts[-1]


def check_signature(cfg, micro_batches, mlir):
    """The step's arguments are the contract's: names, shapes, types (the
    attribute that names them may be loom.input, loom.param or another)."""
    m = re.search(r"func\.func @\w+\((.*?)\)\s*->", mlir, re.S)
    if not m:
        print("graph mismatch: no func.func signature in the step")
        return False
    errors = []
    got = {}
    for num, ty, attrs in _ARG_RE.findall(m.group(1)):
        names = _NAME_RE.findall(attrs or "")
        if not names:
            errors.append(f"%arg{num} carries no loom name")
            continue
        got[names[0][1]] = _parse_type(ty)
    want = expected_args(cfg, micro_batches)
    for n in want.keys() - got.keys():
        errors.append(f"missing argument {n}")
    for n in got.keys() - want.keys():
        errors.append(f"unexpected argument {n}")
    for n in sorted(got.keys() & want.keys()):
        if got[n] != want[n]:
            errors.append(f"{n}: {got[n]}, expected {want[n]}")
    for e in errors[:20]:
        print("graph mismatch:", e)
    return not errors


# ----------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------

def _f64(a):
    return np.asarray(a, dtype=np.float64)


def compare(cfg, expected, out, inputs, hp=None):
    """[(quantity, tensor, error, tolerance)] of loom's outputs `out` against
    the reference StepResult `expected` (see TOLERANCES)."""
    hp = hp or rt.Hyper()
    rows = []
    exp_out = expected.outputs()
    loss = float(out["loss"])
    rows.append(("loss", "loss", abs(loss - expected.loss) / expected.loss,
                 TOLERANCES["loss"]))
    gn = float(out["grad_norm"])
    rows.append(("grad_norm", "grad_norm (reference)",
                 abs(gn - expected.grad_norm) / expected.grad_norm,
                 TOLERANCES["grad_norm"]))
    names = [n for n, _ in ref.param_specs(cfg)]
    loom_grads = {n: _f64(out[n + ".grad"]) for n in names}
    own = rt.global_norm(loom_grads)
    rows.append(("grad_norm", "grad_norm (its .grad outputs)",
                 abs(gn - own) / max(own, 1e-30), TOLERANCES["grad_norm"]))
    gmax = max(float(np.max(np.abs(g))) for g in expected.grads.values())
    for n in names:
        want = exp_out[n + ".grad"]
        scale = max(float(np.max(np.abs(want))), 0.01 * gmax)
        err = float(np.max(np.abs(loom_grads[n] - want))) / scale
        rows.append(("grad", n + ".grad", err, TOLERANCES["grad"]))

    # The optimizer on loom's own gradients, clipped by loom's grad_norm.
    coef = rt.clip_coefficient(gn, hp.max_norm)
    lr, step = float(inputs["lr"]), int(inputs["step"])
    for n in names:
        mn, vn = rt.state_names(n)
        p0 = _f64(inputs[n])
        p, m, v = rt.adamw(p0, loom_grads[n] * coef, _f64(inputs[mn]),
                           _f64(inputs[vn]), step, lr, hp, rt.decays(p0.shape))
        err_m = np.max(np.abs(_f64(out[mn]) - m)) / max(np.max(np.abs(m)),
                                                        1e-30)
        err_v = np.max(np.abs(_f64(out[vn]) - v) / v)
        err_p = np.max(np.abs(_f64(out[n]) - p)) / max(np.max(np.abs(p - p0)),
                                                       1e-30)
        rows.append(("exp_avg", mn, float(err_m), TOLERANCES["exp_avg"]))
        rows.append(("exp_avg_sq", vn, float(err_v), TOLERANCES["exp_avg_sq"]))
        rows.append(("param", n, float(err_p), TOLERANCES["param"]))
    return rows


def worst_ratio(rows, quantity=None):
    """The largest error / tolerance (of one quantity)."""
    return max(e / t for q, _, e, t in rows if quantity in (None, q))


def report(rows):
    """Prints each quantity's worst error and every failure; True if all
    are within tolerance."""
    ok = True
    for q in TOLERANCES:
        sel = [r for r in rows if r[0] == q]
        if not sel:
            continue
        _, name, err, tol = max(sel, key=lambda r: r[2] / r[3])
        bad = [r for r in sel if not r[2] <= r[3]]
        print(f"  {q:<10} max error {err:.2e} ({name}), tolerance {tol:g}"
              f"{'' if not bad else f'  FAIL: {len(bad)} over'}")
        for _, n, e, t in bad[:10]:
            print(f"    FAIL {n}: {e:.3e} > {t:g}")
        ok = ok and not bad
    return ok


def check_output_arrays(cfg, out):
    """Every output is there, f32, with its shape."""
    errors = []
    shapes = {"loss": (), "grad_norm": ()}
    for name, shape in ref.param_specs(cfg):
        for n in [name + ".grad", name, *rt.state_names(name)]:
            shapes[n] = tuple(shape)
    for n, shape in shapes.items():
        if n not in out:
            errors.append(f"no output {n}.npy")
        elif out[n].dtype != np.float32 or out[n].shape != shape:
            errors.append(f"{n}.npy is {out[n].dtype} {out[n].shape}, "
                          f"expected float32 {shape}")
        elif not np.all(np.isfinite(out[n])):
            errors.append(f"{n}.npy has non-finite values")
    for e in errors[:20]:
        print("error:", e)
    return not errors


def load_outputs(out_dir, names):
    out = {}
    for n in names:
        path = os.path.join(out_dir, n + ".npy")
        if os.path.exists(path):
            out[n] = np.load(path)
    return out


def run_model(opts):
    cfg = ref.config_from_flags(opts.model, opts.flags)
    M = opts.micro_batches
    os.makedirs(opts.tmpdir, exist_ok=True)
    in_dir = os.path.join(opts.tmpdir, "inputs")
    out_dir = os.path.join(opts.tmpdir, "outputs")
    for d in (in_dir, out_dir):   # nothing left from an earlier run
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    step_mlir = os.path.join(opts.tmpdir, "step.mlir")
    if not opts.fake_loom:
        subprocess.check_call(["loom-models", opts.model, *opts.flags,
                               "--train", "--emit-gradients",
                               "--micro-batches", str(M), "-o", step_mlir])
        with open(step_mlir) as f:
            if not check_signature(cfg, M, f.read()):
                return 1

    inputs = make_inputs(cfg, M, opts.seed)
    for name, arr in inputs.items():
        np.save(os.path.join(in_dir, name + ".npy"), arr)
    with open(os.path.join(opts.tmpdir, "config.txt"), "w") as f:
        f.write(" ".join([opts.model, *opts.flags, "--micro-batches", str(M)])
                + "\n")
    expected = reference_step(cfg, inputs, M)
    margin, dropped, total = rt.routing_summary(expected.caches)
    label = f"{opts.model} {' '.join(opts.flags)}".rstrip()
    print(f"{label}, {M} microbatch(es) of {cfg.batch}x{cfg.seq}, step "
          f"{STEP}, lr {LR:g}")
    if total:
        print(f"routing: capacity {cfg.capacity}, dropped {dropped}/{total} "
              f"assignments, smallest top-k logit margin {margin:.3g}")
        if margin < 1e-4:
            print("warning: a near tie in routing; f32 rounding may pick "
                  "another expert")
    print(f"reference: loss {expected.loss:.9g}, grad_norm "
          f"{expected.grad_norm:.9g}, clip coefficient {expected.clip_coef:.6g}")

    if opts.fake_loom:
        mistake = opts.fake_mistake
        variant = {mistake: True} if mistake else None
        print("fake loom: the reference in float32" + (
            f" with mistake {mistake} ({rt.MISTAKES[mistake]})"
            if mistake else ""))
        fake = reference_step(cfg, inputs, M, variant, np.float32)
        for n, a in fake.outputs().items():
            np.save(os.path.join(out_dir, n + ".npy"),
                    np.asarray(a, dtype=np.float32))
    else:
        cmd = ["loom-run", step_mlir, "--inputs", in_dir, "--outputs",
               out_dir, "--steps", "1", "--quiet",
               *shlex.split(opts.loom_run_args)]
        print("running:", " ".join(cmd))
        sys.stdout.flush()
        subprocess.check_call(cmd)

    out = load_outputs(out_dir, expected_outputs(cfg))
    if not check_output_arrays(cfg, out):
        print("FAIL: the step's outputs are incomplete")
        return 1
    print(f"loom: loss {float(out['loss']):.9g}, grad_norm "
          f"{float(out['grad_norm']):.9g}")
    ok = report(compare(cfg, expected, out, inputs))
    print("PASS: the step matches the reference" if ok else
          "FAIL: the step differs from the reference beyond tolerance")
    return 0 if ok else 1


def compare_runs(dir_a, dir_b):
    """Two runs of the same inputs agree (e.g. 4 microbatches of b against
    one of 4b)."""
    ok = True
    names = sorted(f[:-4] for f in os.listdir(os.path.join(dir_a, "inputs")))
    if names != sorted(f[:-4] for f in os.listdir(os.path.join(dir_b,
                                                               "inputs"))):
        print("FAIL: the runs have different inputs")
        return 1
    for n in names:
        a = np.load(os.path.join(dir_a, "inputs", n + ".npy"))
        pb = os.path.join(dir_b, "inputs", n + ".npy")
        if not os.path.exists(pb) or not np.array_equal(a, np.load(pb)):
            print(f"FAIL: input {n} differs between the runs")
            ok = False
    if not ok:
        return 1
    with open(os.path.join(dir_a, "config.txt")) as f:
        words = f.read().split()
    model, flags = words[0], words[1:-2]
    cfg = ref.config_from_flags(model, flags)
    inputs = {n: np.load(os.path.join(dir_a, "inputs", n + ".npy"))
              for n in names}
    outs = [load_outputs(os.path.join(d, "outputs"), expected_outputs(cfg))
            for d in (dir_a, dir_b)]
    for o in outs:
        if not check_output_arrays(cfg, o):
            return 1
    # Run B's outputs as the expectation for run A's (as float64).
    params, _ = split_inputs(cfg, inputs)
    names_p = list(params)
    b = outs[1]
    grads_b = {n: _f64(b[n + ".grad"]) for n in names_p}
    expected = rt.StepResult(
        float(b["loss"]), float(b["grad_norm"]), 1.0, grads_b,
        {n: _f64(b[n]) for n in names_p},
        {s: _f64(b[s]) for n in names_p for s in rt.state_names(n)})
    print(f"{dir_a} against {dir_b}:")
    rows = [r for r in compare(cfg, expected, outs[0], inputs)
            if r[0] in ("loss", "grad_norm", "grad")]
    # Updated params and moments follow from the gradients and were checked
    # on each run's own gradients; the moments agree as the gradients do
    # (relative to each tensor's max, the gradient tolerance).
    for n in names_p:
        for q, s in zip(("exp_avg", "exp_avg_sq"), rt.state_names(n)):
            d = np.max(np.abs(_f64(outs[0][s]) - _f64(b[s])))
            rows.append((q, s, float(d / np.max(np.abs(_f64(b[s])))),
                         TOLERANCES["grad"]))
    ok = report(rows)
    print("PASS: the runs agree" if ok else "FAIL: the runs differ")
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# Self-check of the reference
# ----------------------------------------------------------------------------

class Checker:
    def __init__(self):
        self.failures = 0

    def true(self, what, cond):
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")
        self.failures += not cond

    def err(self, what, err, tol):
        """An error (already relative) against its tolerance."""
        ok = bool(err <= tol)
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {err:.1e} (tolerance "
              f"{tol:g})")
        self.failures += not ok


# Central differences in float64 with h = 1e-6 on O(1) inputs: truncation
# ~h²·f''' ~ 1e-12, cancellation ~ 1e-16·|L|/h ~ 1e-9 for |L| ~ 10; a wrong
# term in a backward is O(1e-2) or more. Hence 1e-6 relative to the largest
# gradient of that input.
OP_FD_TOL = 1e-6


def fd_check(c, what, f, args, grads, dy, wrt, h=1e-6):
    """Each analytic gradient grads[i] (i in wrt) of L = Σ dy·f(*args)
    against central differences over every element of args[i]."""
    args = [np.array(a, dtype=np.float64) if i in wrt else a
            for i, a in enumerate(args)]
    for i in wrt:
        x = args[i]
        fd = np.zeros_like(x)
        for ix in np.ndindex(x.shape):
            old = x[ix]
            x[ix] = old + h
            lp = float(np.sum(dy * f(*args)))
            x[ix] = old - h
            lm = float(np.sum(dy * f(*args)))
            x[ix] = old
            fd[ix] = (lp - lm) / (2 * h)
        g = np.asarray(grads[i])
        scale = max(float(np.max(np.abs(fd))), 1e-300)
        err = (float(np.max(np.abs(fd - g))) / scale
               if g.shape == fd.shape else math.inf)
        c.err(f"{what}: d/d{'abcdefgh'[i]} {x.shape}", err, OP_FD_TOL)


def matmul(a, b, transpose_a=False, transpose_b=False):
    """loom.matmul from docs/OpSemantics.md (b without batch dims is shared)."""
    A = np.swapaxes(a, -1, -2) if transpose_a else a
    B = np.swapaxes(b, -1, -2) if transpose_b else b
    return A @ B


def _separated_logits(rng, T, E, gap=0.5):
    """Router logits whose sorted values are >= gap apart (plus noise of 0.01):
    finite differences cannot change the top-k choice."""
    return np.stack([rng.permutation(E) * gap for _ in range(T)]) + \
        0.01 * rng.standard_normal((T, E))


def selfcheck_ops(c, rng):
    print(f"each op's backward against central differences (h = 1e-6, "
          f"tolerance {OP_FD_TOL:g} of the largest gradient):")
    # matmul: shared weight, transposes, batch dims on both sides.
    for sa, sb, ta, tb in [((2, 3, 5, 4), (6, 4), False, True),
                           ((2, 3, 4, 5), (4, 6), True, False),
                           ((3, 5, 4), (3, 4, 2), False, False),
                           ((3, 4, 5), (3, 2, 4), True, True),
                           ((5, 3), (3, 7), False, False)]:
        a, b = rng.standard_normal(sa), rng.standard_normal(sb)
        dy = rng.standard_normal(matmul(a, b, ta, tb).shape)
        fd_check(c, f"matmul {sa}x{sb} ta={ta} tb={tb}",
                 lambda a, b: matmul(a, b, ta, tb), [a, b],
                 rt.matmul_bwd(dy, a, b, ta, tb), dy, [0, 1])
    x, w, b = (rng.standard_normal((2, 3, 5)), rng.standard_normal((4, 5)),
               rng.standard_normal(4))
    dy = rng.standard_normal((2, 3, 4))
    fd_check(c, "linear with bias (broadcast over [2, 3])", ref.linear_op,
             [x, w, b], rt.linear_bwd(dy, x, w, True), dy, [0, 1, 2])
    for xs, shape, dims in [((5, 3), (2, 5, 3), (1, 2)),
                            ((3,), (2, 5, 3), (2,)),
                            ((1, 3), (4, 3), (0, 1)),
                            ((2, 1), (2, 3, 4), (0, 2))]:
        x = rng.standard_normal(xs)
        dy = rng.standard_normal(shape)
        fd_check(c, f"broadcast {xs} -> {shape} dims {dims}",
                 lambda x: rt.broadcast(x, shape, dims), [x],
                 [rt.broadcast_bwd(dy, xs, dims)], dy, [0])
    x = rng.standard_normal((2, 3, 4, 5))
    perm = (2, 0, 3, 1)
    dy = rng.standard_normal(np.transpose(x, perm).shape)
    fd_check(c, f"transpose {perm}", lambda x: np.transpose(x, perm), [x],
             [rt.transpose_bwd(dy, perm)], dy, [0])
    dy = rng.standard_normal((6, 20))
    fd_check(c, "reshape [2,3,4,5] -> [6,20]", lambda x: x.reshape(6, 20),
             [x], [rt.reshape_bwd(dy, x.shape)], dy, [0])

    x = rng.standard_normal((3, 5, 7)) * 2
    w, b = 1 + 0.3 * rng.standard_normal(7), rng.standard_normal(7)
    dy = rng.standard_normal(x.shape)
    fd_check(c, "rmsnorm [3,5,7] eps 1e-5", lambda x, w: ref.rmsnorm(x, w, 1e-5),
             [x, w], rt.rmsnorm_bwd(dy, x, w, 1e-5), dy, [0, 1])
    fd_check(c, "rmsnorm eps 0.5 (eps matters)",
             lambda x, w: ref.rmsnorm(x, w, 0.5), [x, w],
             rt.rmsnorm_bwd(dy, x, w, 0.5), dy, [0, 1])
    fd_check(c, "layernorm [3,5,7] with bias",
             lambda x, w, b: ref.layernorm(x, w, b, 1e-5), [x, w, b],
             rt.layernorm_bwd(dy, x, w, 1e-5), dy, [0, 1, 2])
    dx, dw, _ = rt.layernorm_bwd(dy, x, w, 0.3, has_bias=False)
    fd_check(c, "layernorm without bias, eps 0.3",
             lambda x, w: ref.layernorm(x, w, None, 0.3), [x, w], [dx, dw], dy,
             [0, 1])
    x = rng.standard_normal((4, 9)) * 3
    dy = rng.standard_normal(x.shape)
    for approx in ("none", "tanh"):
        fd_check(c, f"gelu {approx}", lambda x: ref.gelu(x, approx), [x],
                 [rt.gelu_bwd(dy, x, approx)], dy, [0])
    fd_check(c, "silu", ref.silu, [x], [rt.silu_bwd(dy, x)], dy, [0])
    u = rng.standard_normal(x.shape)
    fd_check(c, "swiglu", ref.swiglu, [x, u], rt.swiglu_bwd(dy, x, u), dy,
             [0, 1])

    x = rng.standard_normal((2, 5, 3, 6))
    dy = rng.standard_normal(x.shape)
    for theta, off in [(10000.0, 0), (500000.0, 3)]:
        fd_check(c, f"rope [2,5,3,6] theta {theta:g} offset {off}",
                 lambda x: ref.rope(x, theta, off), [x],
                 [rt.rope_bwd(dy, theta, off)], dy, [0])
    c.true("rope's transpose is its inverse (rotation by the opposite angle)",
           np.allclose(rt.rope_bwd(ref.rope(x, 10000.0, 2), 10000.0, 2), x,
                       rtol=0, atol=1e-14))

    B, S, D = 2, 5, 4
    for hq, hkv, causal, scale in [(4, 4, True, None), (4, 2, True, None),
                                   (4, 1, True, None), (6, 3, False, 0.3),
                                   (6, 1, False, None), (3, 3, True, 0.7)]:
        q = rng.standard_normal((B, S, hq, D))
        k = rng.standard_normal((B, S, hkv, D))
        v = rng.standard_normal((B, S, hkv, D))
        dy = rng.standard_normal(q.shape)
        fd_check(c, f"attention Hq={hq} Hkv={hkv} causal={causal} "
                 f"scale={scale}",
                 lambda q, k, v: ref.attention(q, k, v, causal, scale),
                 [q, k, v], rt.attention_bwd(dy, q, k, v, causal, scale), dy,
                 [0, 1, 2])

    V, H = 7, 3
    ids = np.array([[1, 4, 1, 0, 6], [4, 4, 2, 1, 0]])
    table = rng.standard_normal((V, H))
    dy = rng.standard_normal((2, 5, H))
    fd_check(c, "embedding with repeated ids (scatter-add)",
             lambda t: t[ids], [table], [rt.embedding_bwd(dy, ids, V)], dy,
             [0])
    c.true("embedding: an unused row gets no gradient",
           not np.any(rt.embedding_bwd(dy, ids, V)[[3, 5]]))
    for shape in [(2, 3, 7), (5, 4)]:
        z = rng.standard_normal(shape) * 2
        tgt = rng.integers(0, shape[-1], size=shape[:-1])
        fd_check(c, f"cross_entropy {shape} (mean)",
                 lambda z: ref.cross_entropy(z, tgt), [z],
                 [rt.cross_entropy_bwd(z, tgt, 0.7)], 0.7, [0])

    T, E = 6, 5
    z = _separated_logits(rng, T, E)
    for k, sm, nz in [(2, False, False), (3, True, True), (2, True, False),
                      (1, True, True), (1, False, False), (5, True, False)]:
        _, idx = ref.router(z, k, sm, nz)
        dw = rng.standard_normal((T, k))
        fd_check(c, f"router k={k} softmax_before_topk={sm} normalize={nz}",
                 lambda z: ref.router(z, k, sm, nz)[0], [z],
                 [rt.router_bwd(dw, z, idx, sm, nz)], dw, [0])

    T, H, E, F = 9, 3, 3, 4
    x = rng.standard_normal((T, H))
    for C, k in [(9, 2), (3, 2), (2, 1), (1, 3)]:
        idx = np.stack([rng.permutation(E)[:k] for _ in range(T)])
        sl = rt.slots(idx, E, C)
        wts = rng.standard_normal((T, k))
        y = rng.standard_normal((E, C, F))
        dy = rng.standard_normal((E, C, H))
        fd_check(c, f"dispatch C={C} k={k} ({int(np.sum(sl < 0))} dropped)",
                 lambda x: ref.dispatch(x, idx, E, C), [x],
                 [rt.dispatch_bwd(dy, idx, sl, T)], dy, [0])
        dout = rng.standard_normal((T, F))
        fd_check(c, f"combine C={C} k={k}",
                 lambda y, w: ref.combine(y, w, idx, C), [y, wts],
                 rt.combine_bwd(dout, y, wts, idx, sl), dout, [0, 1])
    # A token all of whose assignments are dropped gets no gradient.
    idx = np.array([[0, 1], [0, 1], [1, 0]])
    sl = rt.slots(idx, 2, 1)
    dx = rt.dispatch_bwd(np.ones((2, 1, 1)), idx, sl, 3)
    _, dwt = rt.combine_bwd(np.ones((3, 1)), np.ones((2, 1, 1)),
                            np.ones((3, 2)), idx, sl)
    c.true("capacity 1: tokens 1 and 2 are dropped and get no gradient "
           "through the experts", list(dx[:, 0]) == [2, 0, 0]
           and list(dwt.ravel()) == [1, 1, 0, 0, 0, 0])
    xe = rng.standard_normal((E, 2, H))
    for tw, ws in [(True, (E, F, H)), (False, (E, H, F))]:
        w = rng.standard_normal(ws)
        dy = rng.standard_normal((E, 2, F))
        fd_check(c, f"grouped_matmul transpose_w={tw}",
                 lambda x, w: ref.grouped_matmul(x, w, tw), [xe, w],
                 rt.grouped_matmul_bwd(dy, xe, w, tw), dy, [0, 1])


# Whole models: central differences of the float64 loss along a random unit
# direction u per parameter tensor (h = 1e-5) and at single elements (the
# largest gradient and a random one). Cancellation ~ 1e-16·|L|/h ~ 1e-10
# absolute, truncation ~ 1e-10; measured errors are ~1e-9 relative. Scale:
# the tensor's gradient norm (its max for elements), at least 1e-3 of the
# global norm (1% of the largest element, as the driver's floor): k_proj.bias's
# true gradient is 0 (softmax ignores shifting all scores), so its finite
# difference is pure cancellation noise.
MODEL_FD_TOL = 1e-6


def _loss(cfg, P, tokens, targets, M, routing=None):
    total = 0.0
    for i in range(M):
        rows = slice(i * cfg.batch, (i + 1) * cfg.batch)
        loss, cache = rt.model_forward(cfg, P, tokens[rows], targets[rows])
        total += loss
        if routing is not None:
            routing.extend(r["indices"] for r in cache["routing"])
    return total / M


def selfcheck_model(c, name, flags, M=1, seed=0, label=None):
    cfg = ref.config_from_flags(name, flags)
    rng = np.random.default_rng(seed)
    params = ref.init_params(cfg, rng)
    shape = (M * cfg.batch, cfg.seq)
    tokens = rng.integers(0, cfg.vocab, size=shape, dtype=np.int32)
    targets = rng.integers(0, cfg.vocab, size=shape, dtype=np.int32)
    label = (label or f"{name} {' '.join(flags)}".strip()) + (
        f", M={M}" if M > 1 else "")
    caches = []
    loss, G = rt.loss_and_grads(cfg, params, tokens, targets, M, caches=caches)
    want = np.mean([ref.forward(cfg, params, tokens[i * cfg.batch:
                                                    (i + 1) * cfg.batch],
                                targets[i * cfg.batch:(i + 1) * cfg.batch])
                    for i in range(M)])
    c.true(f"{label}: the training forward's loss is reference.forward's "
           f"({loss:.6f})", abs(loss - want) <= 1e-12 * want)
    P = {k: v.astype(np.float64) for k, v in params.items()}
    base_routing = []
    _loss(cfg, P, tokens, targets, M, base_routing)
    margin, dropped, total = rt.routing_summary(caches)
    gall = rt.global_norm(G)
    gmax = max(float(np.max(np.abs(g))) for g in G.values())
    h = 1e-5
    worst_dir, worst_el = (0.0, ""), (0.0, "")
    routing_same = True

    def L(name_, delta):
        Q = dict(P)
        Q[name_] = P[name_] + delta
        routing = []
        val = _loss(cfg, Q, tokens, targets, M, routing)
        nonlocal routing_same
        routing_same &= all(np.array_equal(a, b)
                            for a, b in zip(routing, base_routing))
        return val

    for pn, g in G.items():
        u = rng.standard_normal(g.shape)
        u /= np.linalg.norm(u)
        fd = (L(pn, h * u) - L(pn, -h * u)) / (2 * h)
        err = abs(fd - float(np.sum(g * u))) / max(np.linalg.norm(g),
                                                   1e-3 * gall)
        worst_dir = max(worst_dir, (err, pn))
        flat = np.abs(g).ravel()
        for el in {int(np.argmax(flat)), int(rng.integers(flat.size))}:
            e = np.zeros(g.size)
            e[el] = h
            e = e.reshape(g.shape)
            fd = (L(pn, e) - L(pn, -e)) / (2 * h)
            err = abs(fd - g.ravel()[el]) / max(float(flat.max()), 0.01 * gmax)
            worst_el = max(worst_el, (err, pn))
    c.err(f"{label}: {len(G)} parameter gradients along random directions "
          f"(worst {worst_dir[1]})", worst_dir[0], MODEL_FD_TOL)
    c.err(f"{label}: single elements, largest and random (worst "
          f"{worst_el[1]})", worst_el[0], MODEL_FD_TOL)
    if total:
        # Perturbations move router logits by ~h·|x|·|u| < 1e-5, far below the
        # smallest k-th/(k+1)-th margin, so top-k and slots stay put.
        c.true(f"{label}: routing unchanged by every perturbation (smallest "
               f"top-k margin {margin:.2g} >> {h:g}; {dropped}/{total} "
               f"assignments dropped)", routing_same and margin > 100 * h)
    return cfg, params, tokens, targets


def transcribed_adamw(param, grad, exp_avg, exp_avg_sq, step_t, lr, beta1,
                      beta2, eps, weight_decay):
    """torch/optim/adamw.py _single_tensor_adamw, non-capturable,
    non-amsgrad, transcribed line by line (step_t is the count before this
    step: `step_t += 1` comes first); in-place ops as NumPy out= calls."""
    step_t += 1
    param *= 1 - lr * weight_decay                           # param.mul_
    exp_avg += (grad - exp_avg) * (1 - beta1)                # exp_avg.lerp_
    exp_avg_sq *= beta2                                      # .mul_(beta2)
    exp_avg_sq += grad * grad * (1 - beta2)                  # .addcmul_
    step = step_t
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = math.sqrt(bias_correction2)      # _dispatch_sqrt
    denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
    param += -step_size * (exp_avg / denom)                  # addcdiv_
    return step_t


def transcribed_clip(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_ (norm_type 2, foreach=False)."""
    norms = [np.linalg.norm(g.ravel()) for g in grads]
    total_norm = np.linalg.norm(np.array(norms))
    clip_coef = max_norm / (total_norm + 1e-6)
    clip_coef_clamped = min(clip_coef, 1.0)                  # clamp(max=1.0)
    for g in grads:
        g *= clip_coef_clamped
    return total_norm


def selfcheck_optimizer(c, rng):
    print("clipping and AdamW against PyTorch's code, transcribed:")
    hp = rt.Hyper()
    shapes = {"w": (5, 3), "b": (3,), "e": (2, 4, 3)}
    params = {n: rng.standard_normal(s) for n, s in shapes.items()}
    for max_norm, gscale in [(1.0, 1.0), (1.0, 0.01), (0.0, 1.0),
                             (2.5, 3.0)]:
        grads = {n: gscale * rng.standard_normal(s) for n, s in shapes.items()}
        state = {}
        for n, s in shapes.items():
            state[n + ".exp_avg"] = 0.1 * rng.standard_normal(s)
            state[n + ".exp_avg_sq"] = 0.01 * rng.random(s)
        hpn = replace(hp, max_norm=max_norm)
        for step in (1, 3, 1000):
            lr = 3e-3
            norm, coef, new_p, new_s = rt.optimizer_step(
                params, grads, state, lr, step, hpn)
            g = {n: a.copy() for n, a in grads.items()}
            total = (transcribed_clip(list(g.values()), max_norm)
                     if max_norm > 0 else rt.global_norm(g))
            worst = abs(norm - total) / total
            for n in shapes:
                p, m = params[n].copy(), state[n + ".exp_avg"].copy()
                v = state[n + ".exp_avg_sq"].copy()
                wd = hp.weight_decay if len(shapes[n]) >= 2 else 0.0
                transcribed_adamw(p, g[n], m, v, step - 1, lr, hp.beta1,
                                  hp.beta2, hp.eps, wd)
                for got, want in [(new_p[n], p), (new_s[n + ".exp_avg"], m),
                                  (new_s[n + ".exp_avg_sq"], v)]:
                    worst = max(worst, float(np.max(np.abs(got - want)
                                                    / np.abs(want))))
            c.err(f"max_norm {max_norm:g}, |g| ~ {gscale:g}, step {step}: "
                  f"norm, p', m', v' (coefficient {coef:.3g})", worst, 1e-14)
    c.true("clip coefficient is max_norm / (norm + 1e-6), at most 1",
           rt.clip_coefficient(3.0, 1.0) == 1.0 / (3.0 + 1e-6)
           and rt.clip_coefficient(0.5, 1.0) == 1.0
           and rt.clip_coefficient(3.0, 0.0) == 1.0)
    # docs/OpSemantics.md writes the same update as
    # lr·(m/(1 − β1ᵗ)) / (sqrt(v/(1 − β2ᵗ)) + ε).
    p, g = rng.standard_normal(50), rng.standard_normal(50)
    m, v = 0.1 * rng.standard_normal(50), 0.01 * rng.random(50)
    pp, mm, vv = rt.adamw(p, g, m, v, 3, 1e-3, hp, True)
    doc = p * (1 - 1e-3 * 0.01) - 1e-3 * (mm / (1 - 0.9 ** 3)) / (
        np.sqrt(vv / (1 - 0.999 ** 3)) + 1e-8)
    c.err("the OpSemantics form of the update agrees",
          float(np.max(np.abs(pp - doc) / np.abs(p - doc))), 1e-12)
    # The constants are double: 1 − β2 with β2 rounded to f32 first is
    # 1 − 0.99900001287 = 9.9998713e-4, 1.29e-5 relative off.
    _, _, v1 = rt.adamw(p, g, 0 * m, 0 * v, 1, 1e-3, hp, True)
    _, _, v2 = rt.adamw(p, g, 0 * m, 0 * v, 1, 1e-3, hp, True,
                        {"beta2_f32": True})
    rel = float(np.max(np.abs(v2 - v1) / v1))
    c.true(f"1 - beta2 in f32 moves v (from 0) by {rel:.3e} relative "
           f"(~1.3e-5; {rel / TOLERANCES['exp_avg_sq']:.1f}x the exp_avg_sq "
           "tolerance)", 1.2e-5 < rel < 1.4e-5
           and rel > 5 * TOLERANCES["exp_avg_sq"])
    c.true("weight decay only for rank >= 2 (matrices, expert weights)",
           rt.decays((5, 3)) and rt.decays((2, 4, 3)) and not rt.decays((3,)))


# Model cases of the tolerance and mistake checks: (model, flags, M).
_STEP_CASES = [
    ("tiny-gpt", [], 1),
    ("tiny-llama", [], 2),
    ("tiny-moe", ["--capacity-factor", "0"], 1),
    ("tiny-moe", ["--capacity-factor", "0.5"], 2),
]

# (variant, models it applies to, the quantity it must break)
_MISTAKES = [
    ("no_microbatch_scale", "tiny-llama", "grad"),
    ("gqa_grad_mean", "tiny-llama", "grad"),
    ("rope_bwd_same_angle", "tiny-llama", "grad"),
    ("tied_output_only", "tiny-gpt", "grad"),
    ("bwd_slots_k_major", "tiny-moe --capacity-factor 0.5", "grad"),
    ("wd_on_all", "tiny-gpt", "param"),
    ("wd_on_all", "tiny-llama", "param"),
    ("adam_l2", "tiny-llama", "param"),
    ("no_bias_correction", "tiny-llama", "param"),
    ("no_clip", "tiny-moe --capacity-factor 0", "param"),
    ("beta2_f32", "tiny-llama", "exp_avg_sq"),
    ("beta2_f32", "tiny-moe --capacity-factor 0.5", "exp_avg_sq"),
]


def selfcheck_steps(c):
    print("f32 emulation of the reference (every op rounded to f32) against "
          "the f64 reference, and mistakes against it, with the driver's "
          "tolerances:")
    for name, flags, M in _STEP_CASES:
        cfg = ref.config_from_flags(name, flags)
        label = f"{name} {' '.join(flags)}".strip()
        inputs = make_inputs(cfg, M, 3)
        expected = reference_step(cfg, inputs, M)
        emu = reference_step(cfg, inputs, M, dtype=np.float32)
        out = {n: np.asarray(a, np.float32) for n, a in emu.outputs().items()}
        rows = compare(cfg, expected, out, inputs)
        for q in TOLERANCES:
            r = worst_ratio(rows, q)
            c.true(f"{label}, M={M}: f32 {q} error is {r:.2g} of its "
                   "tolerance", r < 0.5)
        for var, where, quantity in _MISTAKES:
            if where != label:
                continue
            bad = reference_step(cfg, inputs, M, {var: True})
            out = {n: np.asarray(a, np.float32)
                   for n, a in bad.outputs().items()}
            r = worst_ratio(compare(cfg, expected, out, inputs), quantity)
            c.true(f"{label}, M={M}: mistake {var} breaks {quantity} by "
                   f"{r:.3g}x its tolerance", r > 5)


def selfcheck_accumulation(c):
    print("microbatches:")
    for name, flags in [("tiny-llama", []),
                        ("tiny-moe", ["--capacity-factor", "0"])]:
        cfg = ref.config_from_flags(name, flags)
        big = replace(cfg, batch=4 * cfg.batch)
        a = make_inputs(cfg, 4, 5)
        b = make_inputs(big, 1, 5)
        same = all(np.array_equal(a[n], b[n]) for n in a)
        c.true(f"{name}: 4 microbatches of {cfg.batch} and one of "
               f"{big.batch} get identical inputs", same)
        ra, rb = reference_step(cfg, a, 4), reference_step(big, b, 1)
        err = max(abs(ra.loss - rb.loss) / rb.loss,
                  max(float(np.max(np.abs(ra.grads[n] - rb.grads[n])) /
                            np.max(np.abs(rb.grads[n])) if
                            np.max(np.abs(rb.grads[n])) > 0 else 0)
                      for n in rb.grads))
        c.err(f"{name}: same loss and gradients in f64", err, 1e-12)
        ea = reference_step(cfg, a, 4, dtype=np.float32)
        eb = reference_step(big, b, 1, dtype=np.float32)
        oa = {n: np.asarray(x, np.float32) for n, x in ea.outputs().items()}
        r = worst_ratio(compare(cfg, rb, oa, a))
        r2 = worst_ratio(compare(cfg, eb, oa, a), "grad")
        c.true(f"{name}: f32 emulations agree with the reference ({r:.2g} of "
               f"the tolerances) and each other's gradients ({r2:.2g})",
               r < 0.5 and r2 < 0.5)
        bad = reference_step(cfg, a, 4, {"no_microbatch_scale": True})
        ob = {n: np.asarray(x, np.float32) for n, x in bad.outputs().items()}
        r = worst_ratio(compare(cfg, rb, ob, a), "grad")
        c.true(f"{name}: without the 1/4 scaling the gradients are {r:.3g}x "
               "the tolerance off", r > 1000)


def _signature(args, drop=None, change=None):
    """A step's func.func line with `args` {name: (shape, elem)}."""
    parts = []
    for i, (n, (shape, elem)) in enumerate(args.items()):
        if n == drop:
            continue
        if n == change:
            elem = "bf16"
        ty = "x".join([str(d) for d in shape] + [elem])
        kind = "input" if n in ("tokens", "targets", "lr", "step") else "param"
        parts.append(f'%arg{i}: tensor<{ty}> {{loom.{kind} = "{n}"}}')
    return ("func.func @train_step(" + ", ".join(parts) +
            ') -> (tensor<f32> {loom.output = "loss"})')


def selfcheck_driver(c):
    print("the driver:")
    cfg = ref.config_from_flags("tiny-moe", ["--capacity-factor", "0.5"])
    args = expected_args(cfg, 2)
    c.true("contract: tokens i32 [M·batch, seq], lr f32 and step i32 0-d, "
           "3 tensors per parameter",
           args["tokens"] == ((4, 16), "i32") and args["lr"] == ((), "f32")
           and args["step"] == ((), "i32")
           and len(args) == 4 + 3 * len(ref.param_specs(cfg)))
    c.true("a step with the contract's arguments is accepted",
           check_signature(cfg, 2, _signature(args)))
    c.true("a missing moment is refused", not check_signature(
        cfg, 2, _signature(args, drop="final_norm.weight.exp_avg_sq")))
    c.true("a bf16 parameter is refused", not check_signature(
        cfg, 2, _signature(args, change="layers.0.moe.router.weight")))
    c.true("tokens for another microbatch count are refused",
           not check_signature(cfg, 1, _signature(args)))
    inputs = make_inputs(cfg, 2, 0)
    ok = all(inputs[n].shape == shape and inputs[n].dtype == (
        np.int32 if elem == "i32" else np.float32)
        for n, (shape, elem) in args.items()) and set(inputs) == set(args)
    c.true("make_inputs writes exactly the step's arguments, typed", ok)
    vs = [inputs[n] for n in inputs if n.endswith(".exp_avg_sq")]
    c.true("second moments are positive, step is 3, lr is 1e-3 in f32",
           all(np.all(v > 0) for v in vs) and int(inputs["step"]) == 3
           and inputs["lr"] == np.float32(1e-3))


def selfcheck():
    c = Checker()
    selfcheck_driver(c)
    rng = np.random.default_rng(2024)
    selfcheck_ops(c, rng)
    print("whole models against central differences (h = 1e-5, tolerance "
          f"{MODEL_FD_TOL:g}):")
    for name, flags, M in [
            ("tiny-gpt", [], 1), ("tiny-llama", [], 1),
            ("tiny-llama", ["--kv-heads", "1"], 1),
            ("tiny-llama", ["--kv-heads", "4", "--layers", "1"], 2),
            ("tiny-moe", [], 1), ("tiny-moe", ["--capacity-factor", "0"], 1),
            ("tiny-moe", ["--capacity-factor", "0.5"], 1),
            ("tiny-moe", ["--capacity-factor", "0.5", "--topk", "1"], 2),
            ("mixtral-8x7b", _SMALL_MIXTRAL, 1),
            ("qwen3-30b-a3b", _SMALL_QWEN, 1)]:
        short = {"mixtral-8x7b": "small mixtral (top-2 softmax, capacity "
                 "0.5)", "qwen3-30b-a3b": "small qwen3-moe (softmax first, "
                 "normalized top-3, q/k norm, head dim 12)"}
        selfcheck_model(c, name, flags, M, label=short.get(name))
    selfcheck_optimizer(c, rng)
    selfcheck_accumulation(c)
    selfcheck_steps(c)
    print("selfcheck:", "FAILED" if c.failures else "passed",
          f"({c.failures} failures)")
    return 1 if c.failures else 0


# Scaled-down published presets (as run_forward.py's).
_SMALL_MIXTRAL = ["--layers", "2", "--hidden", "32", "--heads", "4",
                  "--kv-heads", "2", "--ffn", "48", "--vocab", "101",
                  "--seq", "12", "--batch", "2", "--dtype", "f32",
                  "--capacity-factor", "0.5"]
_SMALL_QWEN = ["--layers", "2", "--hidden", "32", "--heads", "4",
               "--kv-heads", "2", "--head-dim", "12", "--ffn", "24",
               "--vocab", "89", "--seq", "10", "--batch", "2",
               "--experts", "8", "--topk", "3", "--dtype", "f32"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--selfcheck":
        return selfcheck()
    if len(sys.argv) > 1 and sys.argv[1] == "--compare":
        if len(sys.argv) != 4:
            sys.exit("usage: run_train.py --compare TMPDIR_A TMPDIR_B")
        return compare_runs(sys.argv[2], sys.argv[3])
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--micro-batches", type=int, default=1)
    p.add_argument("--loom-run-args", default="",
                   help="extra loom-run arguments, e.g. '--nproc 2'")
    p.add_argument("--fake-loom", action="store_true",
                   help="no loom tools: the reference in f32 stands in for "
                   "loom-models and loom-run")
    p.add_argument("--fake-mistake", choices=sorted(rt.MISTAKES),
                   help="--fake-loom with this mistake of reference_train")
    p.add_argument("model")
    p.add_argument("tmpdir")
    p.add_argument("flags", nargs=argparse.REMAINDER,
                   help="loom-models flags")
    opts = p.parse_args()
    if opts.micro_batches < 1:
        p.error("--micro-batches must be at least 1")
    if opts.fake_mistake:
        opts.fake_loom = True
    return run_model(opts)


if __name__ == "__main__":
    sys.exit(main())
