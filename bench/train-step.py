#!/usr/bin/python3
"""A training step on one CPU rank next to its contractions alone and to
PyTorch eager.

The step (forward, backward, global-norm clipping, AdamW) of the mid-size
Llama-style configuration, `loom-models tiny-llama --layers 4 --hidden 1024
--heads 16 --kv-heads 16 --ffn 4096 --seq 512 --vocab 32000 --batch 1
--train`, compiled to a program and run by `loom-run --trace` on the default
threads (or --threads N, as OMP_NUM_THREADS). It prints, from the same run:

  1. the best step time next to the time of the step's contractions alone:
     bench/gemm-replay.cpp, built here against the OpenBLAS that loom-run
     loads, issues exactly the cblas_sgemm calls of the program's matmul,
     attention and attention_grad instructions (shapes, strides, threading)
     and nothing else. Goal: the step within 1.3x of them.
  2. the step's time per kind of instruction, from the Chrome trace.
  3. PyTorch eager on the CPU (bench/train-step-torch.py: same shapes,
     float32, same model math and optimizer, torch.set_num_threads = Loom's
     threads), installed into build/bench-venv on first use (the CPU
     wheels of download.pytorch.org when reachable, else PyPI's).
     Goal: Loom faster.

  bench/train-step.py [--steps 5] [--threads N] [--no-torch] [--layers ...]
                      [--build DIR]   (the build whose bin/ runs: build/)
"""

import argparse
import collections
import json
import os
import re
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
WORK = os.path.join(ROOT, "build", "bench", "train-step")
VENV = os.path.join(ROOT, "build", "bench-venv")
TORCH_CPU = "https://download.pytorch.org/whl/cpu"
CONFIG = [("layers", 4), ("hidden", 1024), ("heads", 16), ("kv-heads", 16),
          ("ffn", 4096), ("seq", 512), ("vocab", 32000), ("batch", 1)]


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=5,
                   help="timed steps (after one warm-up step)")
    p.add_argument("--threads", type=int, default=0,
                   help="OMP_NUM_THREADS (default: OpenMP's, the cores)")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--build", default=os.path.join(ROOT, "build"),
                   help="the build directory whose bin/ to run (its bench/ "
                   "holds the work files; PyTorch stays in build/bench-venv)")
    for name, default in CONFIG:
        p.add_argument("--" + name, type=int, default=default)
    return p.parse_args()


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, check=True, env=env, text=True, **kw)


def save_scalar(path, fmt, descr, value):
    """A 0-d .npy file (format 1.0), without NumPy."""
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (), }" % descr
    header += " " * (63 - len(header) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        f.write(header.encode() + struct.pack(fmt, value))


def compile_step(args):
    os.makedirs(os.path.join(WORK, "in"), exist_ok=True)
    flags = []
    for n, _ in CONFIG:
        flags += [f"--{n}", str(getattr(args, n.replace("-", "_")))]
    step = os.path.join(WORK, "step.mlir")
    run([os.path.join(BIN, "loom-models"), "tiny-llama", *flags, "--train",
         "-o", step])
    program = os.path.join(WORK, "step.loom")
    planned = run([os.path.join(BIN, "loom-opt"), step,
                   "-loom-forward-to-program"], stdout=subprocess.PIPE).stdout
    run([os.path.join(BIN, "loom-translate"), "--loom-to-program", "-o",
         program], input=planned)
    save_scalar(os.path.join(WORK, "in", "lr.npy"), "<f", "<f4", 1e-4)
    save_scalar(os.path.join(WORK, "in", "step.npy"), "<i", "<i4", 1)
    return program, " ".join(flags)


def contractions(program):
    """gemm-replay's lines for the program's matmuls and attention."""
    dump = run([os.path.join(BIN, "loom-dump"), program],
               stdout=subprocess.PIPE).stdout
    shapes, lines = {}, []
    for m in re.finditer(r"^buffer %(\d+) \"[^\"]*\" \w+ \w+\[([\d,]*)\]",
                         dump, re.M):
        shapes[int(m.group(1))] = [int(x) for x in m.group(2).split(",") if x]
    for m in re.finditer(r"^\d+: [^=]*= (matmul|attention|attention_grad)"
                         r"\(([^)]*)\)(?: \{([^}]*)\})?", dump, re.M):
        kind, ops, attrs = m.group(1), m.group(2), m.group(3) or ""
        ids = [int(x) for x in re.findall(r"%(\d+)", ops)]
        flag = lambda name: f"{name} = true" in attrs
        if kind == "matmul":
            a, b = shapes[ids[0]], shapes[ids[1]]
            ta, tb = flag("transpose_lhs"), flag("transpose_rhs")
            m_, k = (a[-1], a[-2]) if ta else (a[-2], a[-1])
            n = b[-2] if tb else b[-1]
            batch = 1
            for x in a[:-2]:
                batch *= x
            lines.append(f"matmul {int(ta)} {int(tb)} {batch} {m_} {n} {k} "
                         f"{int(len(b) == 2)}")
        else:
            q, k = shapes[ids[0]], shapes[ids[1]]
            lines.append(f"{kind} {q[0]} {q[1]} {q[2]} {k[2]} {k[1]} {q[3]} "
                         f"{int(flag('causal'))}")
    return lines


def build_replay():
    """bench/gemm-replay.cpp against the OpenBLAS loom-run loads."""
    ldd = run(["ldd", os.path.join(BIN, "loom-run")],
              stdout=subprocess.PIPE).stdout
    lib = re.search(r"libopenblas\.so\.0 => (\S+)", ldd).group(1)
    variant = os.path.basename(os.path.dirname(lib))  # openblas-openmp
    include = [f"-I/usr/include/x86_64-linux-gnu/{variant}"]
    src = os.path.join(ROOT, "bench", "gemm-replay.cpp")
    exe = os.path.join(os.path.dirname(WORK), "gemm-replay")
    stamp = exe + ".lib"
    if (not os.path.exists(exe) or
            os.path.getmtime(exe) < os.path.getmtime(src) or
            not os.path.exists(stamp) or open(stamp).read() != lib):
        run(["c++", "-O2", "-std=c++17", "-fopenmp", *include, src, lib,
             f"-Wl,-rpath,{os.path.dirname(lib)}", "-o", exe])
        with open(stamp, "w") as f:
            f.write(lib)
    return exe, lib


def step_times(trace):
    """Per step: wall time (first start to last end) and (count, ms) per
    kind. A step starts where the instruction index goes back."""
    steps, last = [], float("inf")
    for e in json.load(open(trace))["traceEvents"]:
        if e.get("ph") != "X" or e.get("tid") != 0:
            continue
        if e["args"]["instruction"] <= last:
            steps.append([e["ts"], 0, collections.defaultdict(lambda: [0, 0.0])])
        last = e["args"]["instruction"]
        steps[-1][1] = e["ts"] + e["dur"]
        steps[-1][2][e["name"]][0] += 1
        steps[-1][2][e["name"]][1] += e["dur"] / 1e3
    return [((end - start) / 1e3, kinds) for start, end, kinds in steps]


def cpu_now():
    """(wall, busy CPU seconds of the machine, CPU seconds of this process
    and its finished children)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v[:3]) + sum(v[5:8])) / os.sysconf("SC_CLK_TCK")
    t = os.times()
    return time.monotonic(), busy, t.user + t.system + t.children_user + \
        t.children_system


def others(since):
    """The cores other processes (and the hypervisor) kept busy since
    cpu_now() gave `since`: the machine is shared."""
    wall, busy, ours = (b - a for a, b in zip(since, cpu_now()))
    return f"   (others busy: {max(0.0, busy - ours) / wall:.2f} cores)"


def torch_step(args, threads):
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python) or subprocess.run(
            [python, "-c", "import torch"], stderr=subprocess.DEVNULL).returncode:
        print(f"(installing PyTorch into {VENV})", flush=True)
        run([sys.executable, "-m", "venv", VENV])
        pip = [python, "-m", "pip", "install", "-q", "torch", "numpy"]
        # The CPU-only wheels if that index is reachable (200 MB), else
        # PyPI's (with CUDA's libraries, some GB).
        if subprocess.run(pip + ["--retries", "1", "--timeout", "15",
                                 "--index-url", TORCH_CPU],
                          stderr=subprocess.DEVNULL).returncode:
            run(pip)
    flags = [f"--{n}={getattr(args, n.replace('-', '_'))}" for n, _ in CONFIG]
    out = run([python, os.path.join(ROOT, "bench", "train-step-torch.py"),
               *flags, f"--threads={threads}", f"--steps={args.steps}"],
              stdout=subprocess.PIPE).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    global BIN, WORK
    args = parse()
    BIN = os.path.join(os.path.abspath(args.build), "bin")
    WORK = os.path.join(os.path.abspath(args.build), "bench", "train-step")
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    threads = args.threads or int(env.get("OMP_NUM_THREADS", 0)) or \
        len(os.sched_getaffinity(0))
    program, config = compile_step(args)
    replay, lib = build_replay()

    trace = os.path.join(WORK, "trace.json")
    t0 = cpu_now()
    run([os.path.join(BIN, "loom-run"), program, "--inputs",
         os.path.join(WORK, "in"), "--steps", str(args.steps + 1),
         "--trace", trace, "--quiet"], env=env)
    steps = step_times(trace)[1:]
    wall, kinds = min(steps, key=lambda s: s[0])
    loom_others, t0 = others(t0), cpu_now()
    out = run([replay, str(args.steps)], env=env, stdout=subprocess.PIPE,
              input="\n".join(contractions(program)) + "\n").stdout
    gemm = float(re.search(r"^total ([\d.]+) ms", out, re.M).group(1))
    gemm_others = others(t0)
    gemm_kinds = dict(re.findall(r"^kind (\S+) ([\d.]+) ms", out, re.M))

    print(f"Loom training step: tiny-llama {config} --train")
    print(f"one CPU rank, {threads} threads; {out.splitlines()[0]} ({lib})")
    print(out.splitlines()[1])
    print()
    print(f"{'':34s}{'ms':>10s}")
    print(f"{'step, best of %d' % len(steps):34s}{wall:10.1f}{loom_others}")
    print(f"{'its contractions alone (sgemm)':34s}{gemm:10.1f}{gemm_others}")
    print(f"{'ratio step / contractions':34s}{wall / gemm:10.2f}"
          "   (goal: 1.3 or less)")
    print()
    print("per kind of instruction, the best step:")
    print(f"  {'kind':20s}{'count':>6s}{'ms':>10s}{'share':>8s}"
          f"{'sgemm alone':>13s}")
    total = sum(v[1] for v in kinds.values())
    for kind, (count, ms) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        if ms < 0.05:
            continue
        alone = gemm_kinds.get(kind)
        alone = f"{float(alone):13.1f}" if alone else ""
        print(f"  {kind:20s}{count:6d}{ms:10.1f}{100 * ms / total:7.1f}%{alone}")
    other = total - sum(v[1] for k, v in kinds.items()
                        if k in ("matmul", "attention", "attention_grad"))
    print(f"  {'all but contractions':26s}{other:10.1f}"
          f"{100 * other / total:7.1f}%")

    if args.no_torch:
        return
    t0 = cpu_now()
    t = torch_step(args, threads)
    print()
    print(f"PyTorch {t['torch']} eager on the CPU, {t['threads']} threads, "
          f"same step ({t['params']} parameters, {t['adamw']} AdamW):")
    print(f"{'':34s}{'ms':>10s}")
    print(f"{'Loom step, best of %d' % len(steps):34s}{wall:10.1f}")
    print(f"{'PyTorch step, best of %d' % len(t['step_s']):34s}"
          f"{t['best_s'] * 1e3:10.1f}{others(t0)}")
    print(f"{'ratio PyTorch / Loom':34s}{t['best_s'] * 1e3 / wall:10.2f}"
          "   (goal: above 1)")


if __name__ == "__main__":
    main()
