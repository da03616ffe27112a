"""Checks the vector-Jacobian rules of the collectives by execution: each
case is a sharded forward over a mesh of N ranks, compiled into a training
step by -loom-autodiff and run by `loom-run --nproc N`, whose gradients are
compared, rank by rank, with those of the equivalent single-rank forward
(compiled and run by Loom the same way) at that rank's shard.

usage:
  run_collective_grads.py [--only SUBSTR] [--perturb CASE:PARAM]
                          [--mistake NAME] TMPDIR
  run_collective_grads.py --list

Both programs of a case are in Inputs/collective-grads/ (NAME.<axis>N.mlir
and the single-rank one). Both are compiled by

  loom-opt f.mlir --loom-autodiff='emit-gradients=true max-grad-norm=0
      weight-decay=0' -loom-forward-to-program
    | loom-translate --loom-to-program -o f.loom

and run for one step with lr 0. The single-rank program's inputs and
parameters are drawn at random; each rank's are sliced from them
(TMPDIR/CASE/in/rank<R>/), and each rank's `<param>.grad` is checked:

  shard       the single-rank gradient at the rank's slice of the parameter
              (a sharded parameter: a column- or row-parallel weight, an
              expert, a ring or pipeline stage's own weight);
  replicated  the whole single-rank gradient, on every rank (a parameter
              downstream of an all_reduce, where the computation is
              replicated);
  partial     summed over the ranks, the single-rank gradient (a parameter
              replicated on every rank but applied to each rank's own part
              of the work: each rank holds its part of the gradient, which
              something else must sum: the gradient all-reduce of sequence
              or data parallelism, or, upstream of a tensor-parallel region,
              Megatron's `f` (identity forward, all-reduce backward), which
              loom has no op for).

What the loss means on each rank (checked too):

  replicated  after an all_reduce (whose rule is the identity, Megatron's
              `g`), every rank computes the same loss, the single-rank one:
              the step's objective is that one loss, not N copies of it.
              With reduce_scatter + all_gather in place of the all_reduce
              (tp-mlp-rsag) the loss is the same, but those rules make the
              objective the sum of the ranks' copies: N x the gradients
              (Case.times);
  sum         each rank's loss is its own tokens' share; the ranks' losses
              sum to the single-rank loss, which is the objective (the rules
              of all_gather, reduce_scatter, all_to_all and permute are the
              transposes of their forwards: the gradient of the sum);
  last        a pipeline: only the last stage computes the loss; the other
              stages' step still returns one (the pass requires it), made a
              constant zero by a zero cotangent input r there.

Tolerance: max |loom − single| / max |single| ≤ 1e-5 over each gradient
tensor (both in f32; they differ by the order of f32 sums, measured
≤ 3e-7), and |loss − single| ≤ 1e-5 · max(1, |single|, Σ_ranks |loss|) (the
ranks' shares can cancel). A shard's check must also be able to fail: the
reference of every other rank's slice must be ≥ 100x the tolerance away (a
cotangent routed to the wrong rank could not pass). The single-rank
gradients come from Loom's own rules, checked against float64 NumPy by
vjp-ops.test.

Cases in XFAIL (a known bug, named there) are run and reported but do not
fail the run; one that passes does (XPASS), so the mark goes with the fix.
--perturb CASE:PARAM scales that parameter's gradient (every rank's) by 1.01
before the comparison; --mistake NAME edits a plausible wrong rule into the
compiled step of its case (MISTAKES): the run must then fail.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
INPUTS = os.path.join(HERE, "Inputs", "collective-grads")
AUTODIFF = ("--loom-autodiff=emit-gradients=true max-grad-norm=0 "
            "weight-decay=0")
TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-5
# A shard's reference must differ from every other rank's by this much.
DISTINCT = 100 * TOLERANCE
PERTURBATION = 1.01
# How long a collective waits for its peers, and the whole run (seconds).
DEADLINE, RUN_TIMEOUT = "10", "30"

# Known bugs: case name -> the bug. The case runs and reports, but its
# failure does not fail the run. (None now: recv's rule is applied, and a
# recv without a peer writes zeros.)
XFAIL = {}


# Plausible wrong rules: name -> (case, what, edit of the step's MLIR).
def _bwd_lines(edit):
    return lambda text: "\n".join(
        edit(ln) if '"bwd-' in ln else ln for ln in text.split("\n"))


MISTAKES = {
    "permute-same-shift": (
        "ring.cp4", "collective_permute's rule keeps the shift instead of "
        "negating it",
        _bwd_lines(lambda ln: re.sub(
            r"shift = (-?)1 : i64",
            lambda m: "shift = " + ("1" if m.group(1) else "-1") + " : i64",
            ln) if "collective_permute" in ln else ln)),
}


# ----------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------

@dataclass
class Param:
    kind: str               # shard | replicated | partial
    # rank -> (name of the single-rank parameter, index of the rank's part)
    source: Callable


@dataclass
class Case:
    name: str
    dist: str               # the sharded forward (Inputs/collective-grads/)
    single: str             # the equivalent single-rank forward
    nproc: int
    comm: str
    loss: str               # replicated | sum | last
    full: dict              # single-rank inputs and parameters (f32)
    inputs: dict            # name -> rank -> the rank's array
    params: dict            # name -> Param
    about: str = ""
    # The step's objective is `times` x the single-rank loss: its gradients
    # are checked against `times` x the single-rank ones.
    times: int = 1


def normal(rng, *shape, scale=1.0, mean=0.0):
    return (mean + scale * rng.standard_normal(shape)).astype(np.float32)


def whole(name):
    """Every rank's copy of single-rank array `name`."""
    return lambda rank: (name, ())


def rows(name, n, size):
    """Rank r's rows [r·n/size, ...) of `name` (dim 0)."""
    k = n // size
    return lambda rank: (name, (slice(rank * k, (rank + 1) * k),))


def cols(name, n, size, dim=1):
    k = n // size
    return lambda rank: (name, (slice(None),) * dim +
                         (slice(rank * k, (rank + 1) * k),))


def index(name):
    """Rank r's entry r of dim 0 of `name`."""
    return lambda rank: (name, (rank,))


def tp_mlp(n, comm="local", seed=1):
    """all_reduce: Megatron's column- and row-parallel pair."""
    rng = np.random.default_rng(seed)
    full = {"x": normal(rng, 4, 5), "r": normal(rng, 4, 5),
            "s": normal(rng, 5, scale=0.3, mean=1.0),
            "w1": normal(rng, 8, 5, scale=0.5),
            "w2": normal(rng, 5, 8, scale=0.5),
            "b": normal(rng, 5, scale=0.3)}
    return Case(
        f"tp-mlp.tp{n}" + ("" if comm == "local" else f".{comm}"),
        f"tp-mlp.tp{n}.mlir", "tp-mlp.single.mlir", n, comm, "replicated",
        full, {"x": whole("x"), "r": whole("r")},
        {"w1": Param("shard", rows("w1", 8, n)),
         "w2": Param("shard", cols("w2", 8, n)),
         "b": Param("replicated", whole("b")),
         "s": Param("partial", whole("s"))},
        "all_reduce -> identity")


def tp_mlp_rsag(n, seed=6):
    """tp_mlp with all_reduce written as reduce_scatter + all_gather."""
    case = tp_mlp(n, seed=seed)
    case.name = f"tp-mlp-rsag.tp{n}"
    case.dist = f"tp-mlp-rsag.tp{n}.mlir"
    case.about = "reduce_scatter + all_gather for all_reduce"
    # Every rank computes the single-rank loss, but these rules are the
    # transposes of their forwards: the objective is the sum of the ranks'
    # losses, n x the single-rank loss. b, replicated downstream, is then
    # a partial gradient like s: each rank holds dL/db, the sum n·dL/db.
    case.times = n
    case.params["b"] = Param("partial", whole("b"))
    return case


def sp_mlp(n, seed=2):
    """all_gather and reduce_scatter: Megatron's sequence parallelism."""
    rng = np.random.default_rng(seed)
    full = {"x": normal(rng, 2, 8, 5), "r": normal(rng, 2, 8, 5),
            "g": normal(rng, 5, scale=0.3, mean=1.0),
            "w1": normal(rng, 8, 5, scale=0.5),
            "w2": normal(rng, 5, 8, scale=0.5)}
    return Case(
        f"sp-mlp.tp{n}", f"sp-mlp.tp{n}.mlir", "sp-mlp.single.mlir", n,
        "local", "sum", full,
        {"x": cols("x", 8, n), "r": cols("r", 8, n)},
        {"w1": Param("shard", rows("w1", 8, n)),
         "w2": Param("shard", cols("w2", 8, n)),
         "g": Param("partial", whole("g"))},
        "all_gather <-> reduce_scatter")


def a2a_experts(n, seed=3):
    """all_to_all: an expert-parallel exchange and its way back."""
    rng = np.random.default_rng(seed)
    full = {"x": normal(rng, n, 3 * n, 5), "r": normal(rng, n, 3 * n, 4),
            "g": normal(rng, n, 5, scale=0.3, mean=1.0),
            "w": normal(rng, n, 4, 5, scale=0.5)}
    return Case(
        f"a2a-experts.ep{n}", f"a2a-experts.ep{n}.mlir",
        f"a2a-experts.single{n}.mlir", n, "local", "sum", full,
        {"x": index("x"), "r": index("r")},
        {"g": Param("shard", index("g")), "w": Param("shard", index("w"))},
        "all_to_all -> all_to_all (split/concat swapped)")


def ring(n, seed=4):
    """collective_permute: shifts +1 and -1 around a ring."""
    rng = np.random.default_rng(seed)
    full = {"x": normal(rng, n, 3, 5), "r": normal(rng, n, 3, 5),
            "w": normal(rng, n, 5, 5, scale=0.5),
            "v": normal(rng, n, 5, scale=0.5, mean=1.0)}
    return Case(
        f"ring.cp{n}", f"ring.cp{n}.mlir", f"ring.single{n}.mlir", n,
        "local", "sum", full, {"x": index("x"), "r": index("r")},
        {"w": Param("shard", index("w")), "v": Param("shard", index("v"))},
        "collective_permute(shift) -> permute(-shift)")


def pipeline(n, seed=5):
    """send/recv: an n-stage pipeline, one stage per rank."""
    rng = np.random.default_rng(seed)
    full = {"x": normal(rng, 3, 5), "r": normal(rng, 3, 5)}
    for k in range(n):
        full[f"w{k}"] = normal(rng, 5, 5, scale=0.7)
    zeros = np.zeros((3, 5), np.float32)
    return Case(
        f"pipeline.pp{n}", f"pipeline.pp{n}.mlir", f"pipeline.single{n}.mlir",
        n, "local", "last", full,
        # The data enters on the first stage, the loss's r on the last.
        {"x": lambda rank: ("x", ()) if rank == 0 else zeros,
         "r": lambda rank: ("r", ()) if rank == n - 1 else zeros},
        {"w": Param("shard", lambda rank: (f"w{rank}", ()))},
        "send -> recv, recv -> send")


def send_no_peer(seed=7):
    """send's rule on ranks without a peer: a recv of zeros."""
    rng = np.random.default_rng(seed)
    full = {"x": normal(rng, 3, 5), "r": normal(rng, 3, 5),
            "w": normal(rng, 5, 5, scale=0.5)}
    return Case(
        "send-no-peer.pp2", "send-no-peer.pp2.mlir", "send-no-peer.single.mlir",
        2, "local", "replicated", full, {"x": whole("x"), "r": whole("r")},
        {"w": Param("replicated", whole("w"))},
        "send -> recv: zeros without a peer")


def all_cases():
    return [tp_mlp(2), tp_mlp(2, comm="gloo"), tp_mlp(4), tp_mlp_rsag(2),
            sp_mlp(2), sp_mlp(4),
            a2a_experts(2), a2a_experts(4),
            ring(2), ring(4),
            send_no_peer(), pipeline(2), pipeline(4)]


# ----------------------------------------------------------------------------
# Running loom
# ----------------------------------------------------------------------------

def compile_step(mlir, prog, edit=None):
    """loom-opt -loom-autodiff | loom-translate; returns (ok, step's MLIR or
    the error). `edit` rewrites the step's MLIR in between."""
    opt = subprocess.run(["loom-opt", mlir, AUTODIFF,
                          "-loom-forward-to-program"], capture_output=True)
    if opt.returncode:
        return False, "loom-opt failed:\n" + opt.stderr.decode()
    step = opt.stdout.decode()
    if edit:
        edited = edit(step)
        if edited == step:
            return False, "the mistake changed nothing"
        step = edited
    tr = subprocess.run(["loom-translate", "--loom-to-program", "-o", prog],
                        input=step.encode(), capture_output=True)
    if tr.returncode:
        return False, "loom-translate failed:\n" + tr.stderr.decode()
    return True, step


def backward_p2p(step_mlir):
    """How many loom.send and loom.recv the step's backward has."""
    bwd = [ln for ln in step_mlir.splitlines() if '"bwd-' in ln]
    return (sum("loom.send" in ln for ln in bwd),
            sum("loom.recv" in ln for ln in bwd))


def save_all(d, arrays):
    os.makedirs(d, exist_ok=True)
    for n, a in arrays.items():
        np.save(os.path.join(d, n + ".npy"), a)


def run_step(prog, in_dir, out_dir, nproc, comm, names):
    """Runs one step; returns ([outputs of rank r], error text)."""
    cmd = ["loom-run", prog, "--inputs", in_dir, "--outputs", out_dir,
           "--steps", "1", "--quiet", "--deadline", DEADLINE,
           "--timeout", RUN_TIMEOUT]
    if nproc > 1:
        cmd += ["--nproc", str(nproc), "--comm", comm]
    run = subprocess.run(cmd, capture_output=True)
    if run.returncode:
        return None, "loom-run failed:\n" + run.stderr.decode()
    outs = []
    for rank in range(nproc):
        d = out_dir if rank == 0 else os.path.join(out_dir, f"rank{rank}")
        out = {}
        for n in names:
            path = os.path.join(d, n + ".npy")
            if not os.path.exists(path):
                return None, f"rank {rank}: no output {n}.npy"
            out[n] = np.load(path)
        outs.append(out)
    return outs, None


def rank_array(case, spec, rank):
    got = spec(rank)
    if isinstance(got, np.ndarray):
        return got
    name, idx = got
    return np.ascontiguousarray(case.full[name][idx])


def run_case(case, tmpdir, edit=None):
    """Runs both programs; returns (single outputs, [rank outputs], error,
    note)."""
    d = os.path.join(tmpdir, case.name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    step_in = {"lr": np.array(0.0, np.float32),
               "step": np.array(1, np.int32)}

    # The single-rank program.
    prog1 = os.path.join(d, "single.loom")
    ok, text = compile_step(os.path.join(INPUTS, case.single), prog1)
    if not ok:
        return None, None, "single-rank program: " + text, ""
    save_all(os.path.join(d, "single-in"), {**case.full, **step_in})
    names1 = ["loss"] + [n + ".grad" for n in case.full
                         if n not in case.inputs]
    single, err = run_step(prog1, os.path.join(d, "single-in"),
                           os.path.join(d, "single-out"), 1, "local", names1)
    if err:
        return None, None, "single-rank program: " + err, ""

    # The sharded program on N ranks.
    prog = os.path.join(d, "sharded.loom")
    ok, text = compile_step(os.path.join(INPUTS, case.dist), prog, edit)
    if not ok:
        return single[0], None, text, ""
    sends, recvs = backward_p2p(text)
    note = (f"the step's backward has {sends} loom.send, {recvs} loom.recv"
            if "loom.recv" in text else "")
    in_dir = os.path.join(d, "in")
    save_all(in_dir, step_in)
    for rank in range(case.nproc):
        arrays = {n: rank_array(case, s, rank) for n, s in case.inputs.items()}
        arrays.update({n: rank_array(case, p.source, rank)
                       for n, p in case.params.items()})
        save_all(os.path.join(in_dir, f"rank{rank}"), arrays)
    names = ["loss"] + [n + ".grad" for n in case.params]
    outs, err = run_step(prog, in_dir, os.path.join(d, "out"), case.nproc,
                         case.comm, names)
    return single[0], outs, err, note


# ----------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------

def rel_error(got, want):
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    scale = np.max(np.abs(want)) if want.size else 0.0
    diff = np.max(np.abs(got - want)) if want.size else 0.0
    return diff / scale if scale > 0 else diff


def compare(case, single, outs, perturb=None):
    """[(what, error, tolerance)] and [problems with the test itself]."""
    rows, problems = [], []
    n = case.nproc
    for rank, out in enumerate(outs):
        for p in case.params:
            if p == perturb:
                out[p + ".grad"] = out[p + ".grad"] * np.float32(PERTURBATION)

    # The loss: relative to the larger of 1 and the magnitudes summed (the
    # ranks' shares of a loss can cancel).
    ref = float(single["loss"])
    losses = [float(o["loss"]) for o in outs]
    scale = max(1.0, abs(ref), sum(abs(l) for l in losses))
    if case.loss == "replicated":
        for rank, l in enumerate(losses):
            rows.append((f"rank{rank} loss", abs(l - ref) / scale, LOSS_TOLERANCE))
    elif case.loss == "sum":
        rows.append(("sum of the ranks' losses",
                     abs(sum(losses) - ref) / scale,
                     LOSS_TOLERANCE))
    else:  # last
        for rank, l in enumerate(losses):
            want = ref if rank == n - 1 else 0.0
            rows.append((f"rank{rank} loss", abs(l - want) / scale, LOSS_TOLERANCE))

    # The gradients.
    for p, spec in case.params.items():
        def ref_of(rank):
            name, idx = spec.source(rank)
            return case.times * single[name + ".grad"][idx].astype(np.float64)
        if spec.kind == "partial":
            total = sum(np.asarray(o[p + ".grad"], np.float64) for o in outs)
            rows.append((f"sum of the ranks' {p}.grad",
                         rel_error(total, ref_of(0)), TOLERANCE))
            continue
        for rank, out in enumerate(outs):
            want = ref_of(rank)
            rows.append((f"rank{rank} {p}.grad",
                         rel_error(out[p + ".grad"], want), TOLERANCE))
            if np.max(np.abs(want)) == 0:
                problems.append(f"rank{rank} {p}: the reference gradient is 0")
            if spec.kind == "shard":
                for other in range(n):
                    if other == rank:
                        continue
                    e = rel_error(ref_of(other), want)
                    if not e >= DISTINCT:
                        problems.append(
                            f"rank{rank} {p}: rank{other}'s slice of the "
                            f"reference is within {e:.1e} of this rank's")
    return rows, problems


def partial_note(case, single, outs):
    """How far one rank's part of a partial gradient is from the whole."""
    notes = []
    for p, spec in case.params.items():
        if spec.kind == "partial":
            name, idx = spec.source(0)
            want = case.times * single[name + ".grad"][idx].astype(np.float64)
            e = max(rel_error(o[p + ".grad"], want) for o in outs)
            notes.append(f"one rank's {p}.grad alone is up to {e:.2f} "
                         f"(relative) off the whole: each holds a part")
    return "; ".join(notes)


def format_rows(rows):
    worst = max(rows, key=lambda r: r[1] / r[2])
    return (f"{len(rows)} checks, worst {worst[1]:.1e} ({worst[0]}), "
            f"tolerance {worst[2]:g}")


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tmpdir", nargs="?")
    ap.add_argument("--only", default="")
    ap.add_argument("--perturb", default="")
    ap.add_argument("--mistake", choices=sorted(MISTAKES))
    ap.add_argument("--list", action="store_true")
    opts = ap.parse_args()
    cases = [c for c in all_cases() if opts.only in c.name]
    if opts.list:
        for c in cases:
            print(f"{c.name:22} {c.about}")
        return 0
    if not opts.tmpdir:
        ap.error("TMPDIR is required")
    perturb_case = perturb_param = None
    if opts.perturb:
        perturb_case, _, perturb_param = opts.perturb.partition(":")
        if not any(c.name == perturb_case and perturb_param in c.params
                   for c in cases):
            sys.exit(f"error: --perturb {opts.perturb}: no such case:param")
    mistake_case = edit = None
    if opts.mistake:
        mistake_case, what, edit = MISTAKES[opts.mistake]
        print(f"mistake {opts.mistake} in {mistake_case}: {what}")
    os.makedirs(opts.tmpdir, exist_ok=True)
    start = time.time()
    failed, xfailed, worst = [], [], (0.0, "")
    for case in cases:
        t0 = time.time()
        single, outs, err, note = run_case(
            case, opts.tmpdir, edit if case.name == mistake_case else None)
        where = f"{case.nproc} ranks, {case.comm}"
        rows, problems = [], []
        if not err:
            rows, problems = compare(
                case, single, outs,
                perturb_param if case.name == perturb_case else None)
        ok = not err and not problems and all(e <= t for _, e, t in rows)
        if case.name in XFAIL:
            status = "XPASS" if ok else "XFAIL"
        else:
            status = "PASS" if ok else "FAIL"
        summary = format_rows(rows) if rows else "did not run"
        print(f"{status:5} {case.name} ({case.about}; {where}; loss "
              f"{case.loss}): {summary} [{time.time() - t0:.1f} s]")
        if err:
            print("      " + err.strip().replace("\n", "\n      "))
        if note:
            print("      " + note)
        if rows and not err:
            pn = partial_note(case, single, outs)
            if pn:
                print("      note: " + pn)
        for pr in problems:
            print(f"      FAIL {case.name}: the check is too weak: {pr}")
        for q, e, t in rows:
            if not e <= t:
                print(f"      {'FAIL' if status == 'FAIL' else 'differs'} "
                      f"{case.name} {q}: error {e:.3e} > tolerance {t:g}")
        if status == "XFAIL":
            print(f"      expected to fail: {XFAIL[case.name]}")
            xfailed.append(case.name)
        elif status == "XPASS":
            print(f"      unexpectedly passed: remove it from XFAIL")
        if status in ("FAIL", "XPASS"):
            failed.append(case.name)
        if status == "PASS":
            for q, e, t in rows:
                if e > worst[0]:
                    worst = (e, f"{case.name} {q}")
    print(f"{len(cases)} cases in {time.time() - start:.1f} s" + (
        f"; worst passing error {worst[0]:.1e} ({worst[1]}), tolerance "
        f"{TOLERANCE:g}" if worst[1] else ""))
    if xfailed:
        print(f"expected failures ({len(xfailed)}): {', '.join(xfailed)}")
    if failed:
        print(f"FAIL: {len(failed)} case(s) differ from the single-rank "
              f"gradients (or pass while marked XFAIL): {', '.join(failed)}")
        return 1
    print("PASS: every collective's gradient matches the single-rank program")
    return 0


if __name__ == "__main__":
    sys.exit(main())
