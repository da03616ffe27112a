"""Runs a zoo model with loom-run and compares its loss with reference.py.

usage:
  run_forward.py [--seed N] [--tol X] [--loom-run-args "ARGS"] [--no-run]
                 MODEL TMPDIR [LOOM-MODELS FLAGS...]
  run_forward.py --selfcheck

The first form emits `loom-models MODEL FLAGS -o TMPDIR/model.mlir`, checks
that the graph's parameters (names, shapes, order) and attributes (capacity,
top-k, rope theta, norm epsilon) are what the configuration implies, writes
random inputs as TMPDIR/inputs/<name>.npy, runs
`loom-run TMPDIR/model.mlir --inputs TMPDIR/inputs --outputs TMPDIR/outputs`,
and compares TMPDIR/outputs/loss.npy with the float64 NumPy reference. It
exits non-zero when the relative error exceeds --tol (default 1e-5). With
--no-run it stops after the graph check and the reference loss.

--selfcheck tests the reference itself: every op against a plain-loop
implementation on tiny shapes, a few hand-computed values, and that plausible
mistakes (interleaved rope, no causal mask, ...) move the loss by far more
than the tolerance.
"""

import argparse
import math
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean under lit
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402


# ----------------------------------------------------------------------------
# Reading the emitted graph
# ----------------------------------------------------------------------------

_ARG_RE = re.compile(
    r'%arg(\d+): tensor<([^>]*)>\s*\{loom\.(param|input) = "([^"]+)"\}')


def _parse_type(text):
    """'2x16xf32' -> ((2, 16), 'f32'); 'f32' -> ((), 'f32')."""
    parts = text.split("x")
    return tuple(int(p) for p in parts[:-1]), parts[-1]


def parse_signature(mlir):
    """[(kind, name, shape, elem)] of @forward's arguments, in order."""
    m = re.search(r"func\.func @\w+\((.*?)\)\s*->", mlir, re.S)
    if not m:
        raise SystemExit("error: no func.func signature in the graph")
    args = []
    for i, (num, ty, kind, name) in enumerate(_ARG_RE.findall(m.group(1))):
        if int(num) != i:
            raise SystemExit(f"error: argument %arg{num} out of order")
        shape, elem = _parse_type(ty)
        args.append((kind, name, shape, elem))
    count = len(re.findall(r"%arg\d+:", m.group(1)))
    if count != len(args):
        raise SystemExit(f"error: {count - len(args)} arguments carry no "
                         "loom.param / loom.input name")
    return args


def _attr(op_line, name):
    m = re.search(name + r" = ([-+0-9.eE]+)", op_line)
    return None if m is None else float(m.group(1))


def check_graph(cfg, mlir, args):
    """The graph has the parameters and attributes `cfg` implies."""
    errors = []
    inputs = [(n, s, e) for k, n, s, e in args if k == "input"]
    params = [(n, s) for k, n, s, e in args if k == "param"]
    expected_inputs = [("tokens", (cfg.batch, cfg.seq), "i32"),
                       ("targets", (cfg.batch, cfg.seq), "i32")]
    if inputs != expected_inputs:
        errors.append(f"inputs {inputs}, expected {expected_inputs}")
    expected = [(n, tuple(s)) for n, s in ref.param_specs(cfg)]
    if params != expected:
        got, want = dict(params), dict(expected)
        for n in want.keys() - got.keys():
            errors.append(f"missing parameter {n}")
        for n in got.keys() - want.keys():
            errors.append(f"unexpected parameter {n}")
        for n in got.keys() & want.keys():
            if got[n] != want[n]:
                errors.append(f"{n}: shape {got[n]}, expected {want[n]}")
        if not errors:
            errors.append("parameters in an unexpected order")
    others = sorted({e for k, n, s, e in args if k == "param" and e != "f32"})
    if others:
        errors.append(f"parameters are {'/'.join(others)}; these tests need "
                      "--dtype f32")
    lines = mlir.splitlines()
    for line in lines:
        # The load-balancing loss counts choices with a dispatch of ones
        # ([T, 1]) with room for every token.
        counting = re.search(r"tensor<\d+x1xf32>, tensor<\d+x\d+xi32>", line)
        if "loom.dispatch" in line and not counting:
            cap = _attr(line, "capacity")
            if cap != cfg.capacity:
                errors.append(f"dispatch capacity {cap}, expected "
                              f"{cfg.capacity}")
        if "loom.router" in line:
            if _attr(line, "top_k") != cfg.topk:
                errors.append(f"router top_k {_attr(line, 'top_k')}, "
                              f"expected {cfg.topk}")
            attrs = line.split("{", 1)[1].split("}", 1)[0]
            # Unit attributes are the entries without a value (loom.layer
            # and other discardable attributes have one).
            flags = {e.strip() for e in attrs.split(",") if "=" not in e}
            want = {f for f, on in [("softmax_before_topk",
                                     cfg.softmax_before_topk),
                                    ("normalize", cfg.normalize_topk)] if on}
            if flags != want:
                errors.append(f"router flags {sorted(flags)}, expected "
                              f"{sorted(want)}")
        if "loom.rope" in line:
            theta = _attr(line, "theta")
            theta = 10000.0 if theta is None else theta
            if theta != cfg.rope_theta:
                errors.append(f"rope theta {theta}, expected {cfg.rope_theta}")
            if _attr(line, "position_offset") not in (None, 0.0):
                errors.append("rope position_offset is not 0")
        if "loom.rmsnorm" in line or "loom.layernorm" in line:
            eps = _attr(line, "epsilon")
            eps = 1e-5 if eps is None else eps
            if not math.isclose(eps, cfg.norm_epsilon, rel_tol=1e-12):
                errors.append(f"norm epsilon {eps}, expected "
                              f"{cfg.norm_epsilon}")
        if "loom.attention" in line:
            if "causal" not in line or "scale =" in line:
                errors.append("attention is not causal with default scale")
        if "loom.gelu" in line and "tanh" not in line:
            errors.append("gelu is not the tanh approximation")
    for e in errors:
        print("graph mismatch:", e)
    return not errors


# ----------------------------------------------------------------------------
# Comparing with loom-run
# ----------------------------------------------------------------------------

def run_model(opts):
    cfg = ref.config_from_flags(opts.model, opts.flags)
    os.makedirs(opts.tmpdir, exist_ok=True)
    model = os.path.join(opts.tmpdir, "model.mlir")
    subprocess.check_call(["loom-models", opts.model, *opts.flags, "-o", model])
    with open(model) as f:
        mlir = f.read()
    args = parse_signature(mlir)
    if not check_graph(cfg, mlir, args):
        return 1

    rng = np.random.default_rng(opts.seed)
    params = ref.init_params(cfg, rng)
    inputs = ref.init_inputs(cfg, rng)
    in_dir = os.path.join(opts.tmpdir, "inputs")
    out_dir = os.path.join(opts.tmpdir, "outputs")
    for d in (in_dir, out_dir):   # nothing left from an earlier run
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    for kind, name, shape, elem in args:
        arr = params[name] if kind == "param" else inputs[name]
        assert arr.shape == shape, (name, arr.shape, shape)
        np.save(os.path.join(in_dir, name + ".npy"), arr)

    stats = {}
    expected = ref.forward(cfg, params, inputs["tokens"], inputs["targets"],
                           stats=stats)
    if "assignments" in stats:
        print(f"routing: capacity {cfg.capacity}, dropped "
              f"{stats['dropped']}/{stats['assignments']} assignments, "
              f"smallest top-k logit margin "
              f"{stats.get('min_topk_margin', math.inf):.3g}")
        if stats.get("min_topk_margin", math.inf) < 1e-4:
            print("warning: a near tie in routing; f32 rounding may pick "
                  "another expert")

    if opts.no_run:
        print(f"reference loss: {expected:.9g} (graph checked; loom-run not "
              "run)")
        return 0
    cmd = ["loom-run", model, "--inputs", in_dir, "--outputs", out_dir,
           *shlex.split(opts.loom_run_args)]
    print("running:", " ".join(cmd))
    sys.stdout.flush()
    subprocess.check_call(cmd)
    loss = np.load(os.path.join(out_dir, "loss.npy"))
    ok = True
    if loss.shape != () or loss.dtype != np.float32:
        print(f"error: loss.npy is {loss.dtype} {loss.shape}, expected "
              "float32 ()")
        ok = False
    actual = float(loss)
    rel = abs(actual - expected) / abs(expected)
    print(f"{opts.model} {' '.join(opts.flags)}".rstrip())
    print(f"  loom-run loss:  {actual:.9g}")
    print(f"  reference loss: {expected:.9g}")
    print(f"  relative error: {rel:.3e} (tolerance {opts.tol:g})")
    if not math.isfinite(actual) or not rel <= opts.tol:
        print("FAIL: the losses differ")
        ok = False

    # With --nproc, every rank runs the whole (unsharded) graph; rank R's
    # outputs are in DIR/rank<R>/ and must give the same loss.
    for sub in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, sub, "loss.npy")
        if sub.startswith("rank") and os.path.exists(path):
            other = float(np.load(path))
            rel_r = abs(other - expected) / abs(expected)
            print(f"  {sub} loss:     {other:.9g} (relative error {rel_r:.3e})")
            if not rel_r <= opts.tol:
                print(f"FAIL: {sub}'s loss differs")
                ok = False

    # A forward graph does not change its parameters; if loom-run writes them
    # back they must be the inputs, bit for bit.
    for kind, name, shape, elem in args:
        path = os.path.join(out_dir, name + ".npy")
        if kind != "param" or not os.path.exists(path):
            continue
        out = np.load(path)
        if out.shape != shape or not np.array_equal(out, params[name]):
            print(f"FAIL: output {name} differs from the input parameter")
            ok = False
    return 0 if ok else 1


# ----------------------------------------------------------------------------
# Self-check of the reference
# ----------------------------------------------------------------------------

def loop_softmax(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def loop_rope(x, theta, offset):
    B, S, N, D = x.shape
    out = np.zeros_like(x)
    for b in range(B):
        for s in range(S):
            for n in range(N):
                for i in range(D // 2):
                    f = theta ** (-2.0 * i / D)
                    a = (s + offset) * f
                    lo, hi = x[b, s, n, i], x[b, s, n, i + D // 2]
                    out[b, s, n, i] = lo * math.cos(a) - hi * math.sin(a)
                    out[b, s, n, i + D // 2] = hi * math.cos(a) + lo * math.sin(a)
    return out


def loop_attention(q, k, v, causal, scale):
    B, S, Hq, D = q.shape
    Hkv = k.shape[2]
    out = np.zeros_like(q)
    for b in range(B):
        for h in range(Hq):
            g = h // (Hq // Hkv)
            for sq in range(S):
                keys = [sk for sk in range(S) if not causal or sk <= sq]
                scores = [scale * sum(q[b, sq, h, d] * k[b, sk, g, d]
                                      for d in range(D)) for sk in keys]
                p = loop_softmax(scores)
                for d in range(D):
                    out[b, sq, h, d] = sum(pi * v[b, sk, g, d]
                                           for pi, sk in zip(p, keys))
    return out


def loop_router(logits, k, softmax_first, normalize):
    T, E = logits.shape
    ws, ids = [], []
    for t in range(T):
        vals = loop_softmax(list(logits[t])) if softmax_first else list(logits[t])
        chosen = []
        for _ in range(k):
            best = None
            for e in range(E):   # strict '>' keeps the lower index on ties
                if e not in chosen and (best is None or vals[e] > vals[best]):
                    best = e
            chosen.append(best)
        if softmax_first:
            w = [vals[e] for e in chosen]
            if normalize:
                s = sum(w)
                w = [x / s for x in w]
        else:
            w = loop_softmax([vals[e] for e in chosen])
        ws.append(w)
        ids.append(chosen)
    return np.array(ws), np.array(ids)


def loop_dispatch_combine(x, y_fn, weights, indices, E, C):
    """Dispatch, per-expert y_fn(e, row) and combine, straight from the spec."""
    T, H = x.shape
    count = [0] * E
    buf = np.zeros((E, C, H))
    where = {}
    for t in range(T):
        for j in range(indices.shape[1]):
            e = indices[t, j]
            slot = count[e]
            count[e] += 1
            if slot < C:
                buf[e, slot] = x[t]
                where[(t, j)] = (e, slot)
    y = np.stack([np.stack([y_fn(e, buf[e, c]) for c in range(C)])
                  for e in range(E)])
    out = np.zeros((T, y.shape[-1]))
    for (t, j), (e, slot) in where.items():
        out[t] += weights[t, j] * y[e, slot]
    return buf, y, out


class Checker:
    def __init__(self):
        self.failures = 0

    def close(self, what, got, want, tol=1e-12):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        err = float(np.max(np.abs(got - want))) if got.size else 0.0
        ok = got.shape == want.shape and err <= tol * max(
            1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: max abs diff {err:.2e}")
        self.failures += not ok

    def true(self, what, cond):
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")
        self.failures += not cond


def selfcheck():
    c = Checker()
    rng = np.random.default_rng(1234)
    print("ops against plain loops:")
    x = rng.standard_normal((3, 7)) * 3
    c.close("softmax", ref.softmax(x), [loop_softmax(list(r)) for r in x])
    c.close("softmax of huge logits", ref.softmax(np.array([[1000.0, 999.0]])),
            [loop_softmax([1000.0, 999.0])])
    c.close("logsumexp", ref.logsumexp(x),
            [math.log(sum(math.exp(v) for v in r)) for r in x])

    w = rng.standard_normal(7)
    b = rng.standard_normal(7)
    c.close("rmsnorm", ref.rmsnorm(x, w, 1e-5),
            [[r[i] / math.sqrt(sum(v * v for v in r) / 7 + 1e-5) * w[i]
              for i in range(7)] for r in x])
    def ln_row(r):
        mu = sum(r) / len(r)
        var = sum((v - mu) ** 2 for v in r) / len(r)
        return [(r[i] - mu) / math.sqrt(var + 1e-5) * w[i] + b[i]
                for i in range(len(r))]
    c.close("layernorm (biased variance)", ref.layernorm(x, w, b, 1e-5),
            [ln_row(r) for r in x])
    c.close("gelu erf", ref.gelu(x),
            [[0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in r] for r in x])
    c.close("gelu tanh", ref.gelu(x, "tanh"),
            [[0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) *
                                       (v + 0.044715 * v ** 3))) for v in r]
             for r in x])
    c.true("gelu tanh is within 1e-3 of erf gelu",
           np.max(np.abs(ref.gelu(x, "tanh") - ref.gelu(x))) < 1e-3)
    g = rng.standard_normal((3, 7))
    c.close("swiglu", ref.swiglu(g, x),
            [[g[i, j] / (1 + math.exp(-g[i, j])) * x[i, j] for j in range(7)]
             for i in range(3)])

    q = rng.standard_normal((2, 5, 4, 6))
    for theta, off in [(10000.0, 0), (500000.0, 3)]:
        c.close(f"rope theta={theta:g} offset={off}",
                ref.rope(q, theta, off), loop_rope(q, theta, off))
    e0 = np.zeros((1, 2, 1, 4))
    e0[0, :, 0, 0] = 1.0
    r = ref.rope(e0, 10000.0)
    c.close("rope by hand: position 0 is the identity", r[0, 0, 0],
            [1, 0, 0, 0])
    c.close("rope by hand: position 1 rotates pair (0, 2) by 1 rad",
            r[0, 1, 0], [math.cos(1), 0, math.sin(1), 0])
    e1 = np.zeros((1, 2, 1, 4))
    e1[0, :, 0, 1] = 1.0
    c.close("rope by hand: pair (1, 3) turns at theta^(-1/2) rad",
            ref.rope(e1, 10000.0)[0, 1, 0], [0, math.cos(0.01), 0,
                                             math.sin(0.01)])
    c.close("rope keeps the norm of each pair",
            np.linalg.norm(ref.rope(q, 10000.0), axis=-1),
            np.linalg.norm(q, axis=-1))

    k = rng.standard_normal((2, 5, 2, 6))
    v = rng.standard_normal((2, 5, 2, 6))
    for causal in (True, False):
        c.close(f"attention GQA 4:2 causal={causal}",
                ref.attention(q, k, v, causal=causal),
                loop_attention(q, k, v, causal, 1 / math.sqrt(6)))
    kk = rng.standard_normal(q.shape)
    vv = rng.standard_normal(q.shape)
    c.close("attention MHA, explicit scale 0.3, no mask",
            ref.attention(q, kk, vv, causal=False, scale=0.3),
            loop_attention(q, kk, vv, False, 0.3))
    c.close("causal attention: query 0 reads value 0 only",
            ref.attention(q, k, v)[:, 0], v[:, 0, [0, 0, 1, 1]])

    t = rng.integers(0, 7, size=(3,))
    c.close("cross_entropy", ref.cross_entropy(x, t),
            sum(math.log(sum(math.exp(a) for a in x[i])) - x[i, t[i]]
                for i in range(3)) / 3)
    c.close("cross_entropy of uniform logits is log V",
            ref.cross_entropy(np.zeros((4, 97)), np.arange(4)), math.log(97))

    logits = rng.standard_normal((9, 5))
    logits[0] = [0.5, 0.5, 0.1, 0.5, -1]      # ties: lower index first
    for k_, sm, nz in [(2, False, False), (3, True, True), (2, True, False),
                       (1, False, False)]:
        wr, ir = ref.router(logits, k_, sm, nz)
        wl, il = loop_router(logits, k_, sm, nz)
        c.close(f"router k={k_} softmax_before_topk={sm} normalize={nz}",
                wr, wl)
        c.true(f"router indices k={k_} softmax_before_topk={sm}",
               np.array_equal(ir, il))
    _, i0 = ref.router(logits, 2)
    c.true("router tie: experts 0 then 1 for logits [.5, .5, .1, .5, -1]",
           list(i0[0]) == [0, 1])

    T, H, E, F = 11, 4, 3, 5
    xs = rng.standard_normal((T, H))
    wg = rng.standard_normal((E, F, H))
    for C, kk in [(11, 2), (4, 2), (2, 1), (1, 3)]:
        idx = np.stack([rng.permutation(E)[:kk] for _ in range(T)])
        wts = rng.random((T, kk))
        buf, y, out = loop_dispatch_combine(
            xs, lambda e, row: wg[e] @ row, wts, idx, E, C)
        d = ref.dispatch(xs, idx, E, C)
        c.close(f"dispatch C={C} k={kk}", d, buf)
        yy = ref.grouped_matmul(d, wg, transpose_w=True)
        c.close(f"grouped_matmul C={C}", yy, y)
        c.close(f"combine C={C} k={kk}", ref.combine(yy, wts, idx, C), out)
    idx = np.array([[0, 1], [0, 1], [1, 0]])
    d = ref.dispatch(np.array([[1.0], [2.0], [3.0]]), idx, 2, 2)
    c.close("dispatch by hand: token 2's second choice (expert 0) is dropped",
            d[:, :, 0], [[1, 2], [1, 2]])
    c.close("combine by hand: dropped slots add nothing",
            ref.combine(np.array([[[10.0], [20.0]], [[30.0], [40.0]]]),
                        np.array([[1.0, 0.1], [1.0, 0.1], [1.0, 0.1]]),
                        idx, 2)[:, 0], [13.0, 24.0, 0.0])
    wk = rng.standard_normal((E, H, F))
    xe = rng.standard_normal((E, 2, H))
    c.close("grouped_matmul untransposed",
            ref.grouped_matmul(xe, wk, transpose_w=False),
            [[[sum(xe[e, r, h] * wk[e, h, f] for h in range(H))
               for f in range(F)] for r in range(2)] for e in range(E)])
    print("models:")
    cases = [
        ("tiny-llama", []), ("tiny-llama", ["--kv-heads", "1"]),
        ("tiny-gpt", []), ("tiny-moe", []),
        ("tiny-moe", ["--capacity-factor", "0.5"]),
        ("tiny-moe", ["--capacity-factor", "0"]),
        ("mixtral-8x7b", _SMALL_MIXTRAL), ("qwen3-30b-a3b", _SMALL_QWEN),
    ]
    for name, flags in cases:
        cfg = ref.config_from_flags(name, flags)
        prng = np.random.default_rng(0)
        params = ref.init_params(cfg, prng)
        inputs = ref.init_inputs(cfg, prng)
        stats = {}
        loss = ref.forward(cfg, params, inputs["tokens"], inputs["targets"],
                           stats=stats)
        label = f"{name} {' '.join(flags)}".strip()
        extra = ""
        if stats:
            extra = (f", dropped {stats['dropped']}/{stats['assignments']}, "
                     f"top-k margin {stats.get('min_topk_margin', 0):.3g}")
        print(f"  {label}: loss {loss:.6f} (log V = {math.log(cfg.vocab):.3f}"
              f"{extra})")
        c.true(f"{label}: finite loss within log V ± 3",
               math.isfinite(loss) and abs(loss - math.log(cfg.vocab)) < 3)
        variants = []
        if not cfg.learned_positions:
            variants.append("rope_interleaved")
        variants.append("no_causal")
        if 1 < cfg.kv_heads < cfg.heads:
            variants.append("gqa_modulo")
        # (gelu erf vs tanh moves these losses by ~1e-5 only; the graph
        # check asserts `approximate tanh` instead.)
        if cfg.norm == "layernorm":
            variants.append("unbiased_var")
        if cfg.is_moe and not cfg.softmax_before_topk:
            variants.append("router_softmax_all")
        if cfg.is_moe and stats.get("dropped"):
            variants.append("dispatch_k_major")
        for var in variants:
            other = ref.forward(cfg, params, inputs["tokens"],
                                inputs["targets"], variant={var: True})
            rel = abs(other - loss) / loss
            c.true(f"{label}: {var} moves the loss by {rel:.1e} (> 1e-4)",
                   rel > 1e-4)
        if stats and cfg.capacity_factor == 0:
            c.true(f"{label}: dropless drops nothing", stats["dropped"] == 0)
        if stats and cfg.capacity_factor == 0.5:
            c.true(f"{label}: capacity factor 0.5 drops tokens",
                   stats["dropped"] > 0)

    print("selfcheck:", "FAILED" if c.failures else "passed",
          f"({c.failures} failures)")
    return 1 if c.failures else 0


# Scaled-down published presets (f32 so loom-run can read them).
_SMALL_MIXTRAL = ["--layers", "2", "--hidden", "32", "--heads", "4",
                  "--kv-heads", "2", "--ffn", "48", "--vocab", "101",
                  "--seq", "12", "--batch", "2", "--dtype", "f32"]
_SMALL_QWEN = ["--layers", "2", "--hidden", "32", "--heads", "4",
               "--kv-heads", "2", "--head-dim", "12", "--ffn", "24",
               "--vocab", "89", "--seq", "10", "--batch", "2",
               "--experts", "8", "--topk", "3", "--dtype", "f32"]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--selfcheck":
        return selfcheck()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--loom-run-args", default="",
                   help="extra loom-run arguments, e.g. '--nproc 2'")
    p.add_argument("--no-run", action="store_true",
                   help="check the graph and compute the reference only")
    p.add_argument("model")
    p.add_argument("tmpdir")
    p.add_argument("flags", nargs=argparse.REMAINDER,
                   help="loom-models flags")
    return run_model(p.parse_args())


if __name__ == "__main__":
    sys.exit(main())
