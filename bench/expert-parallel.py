#!/usr/bin/env python3
"""Expert parallelism on 2 CPU ranks against 1 rank, and the bytes it moves.

Builds a MoE training step (`loom-models tiny-moe --layers 2 --hidden 1024
--heads 8 --kv-heads 8 --ffn 2048 --experts 8 --topk 2 --seq 256 --batch 4
--vocab 8000 --train`: 8 experts, top-2, most of its work in the experts)
and compiles it with loom-opt + loom-translate single-rank, under dp=2
(every rank runs all experts on all tokens: MoE layers without expert
parallelism gather the tokens), under ep=2 (each rank runs 4 experts;
Megatron's allgather dispatcher) and under ep=2,dispatcher=alltoall
(Megatron's all-to-all dispatcher; the same model built with
--token-groups 2, so that capacity is counted per rank as that dispatcher
counts it). As bench/parallel-efficiency.py does (its
step_time), the single-rank program runs with 2 OpenMP/OpenBLAS threads and
each 2-rank program with 1 thread per rank (`--comm local`); a step's time
is the span of the traced instructions / K. Efficiency = T(1 rank) /
T(2 ranks).

Bytes per token: from the compiled IR of each dispatcher, what one rank
receives per MoE layer forward in the dispatcher's collectives over dp
(allgather: the all-gathers of tokens, routing indices and weights into
dispatch, the reduce-scatter out of combine; alltoall: the two all-to-alls
of the slot buffers, capacity padding included: (ep − 1) / ep of each),
per token of the rank; next to the lower bound with uniform routing: each
of a token's k choices is on another rank with probability (ep − 1) / ep,
and its hidden row travels there and back.

    python3 bench/expert-parallel.py [K] [REPEATS]   (default 2 2)
"""
import importlib.util
import os
import re
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "parallel_efficiency", os.path.join(HERE, "parallel-efficiency.py"))
parallel_efficiency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parallel_efficiency)
tool = parallel_efficiency.tool

HIDDEN, TOPK, EP = 1024, 2, 2
MODEL = (f"tiny-moe --layers 2 --hidden {HIDDEN} --heads 8 --kv-heads 8 "
         f"--ffn 2048 --experts 8 --topk {TOPK} --seq 256 --batch 4 "
         "--vocab 8000").split()
TOKENS = 256 * 4


def dispatcher_bytes(mlir):
    """Bytes one rank receives per MoE layer forward in the dispatcher's
    collectives (layer 0, fwd), from the compiled IR."""
    total = 0
    for line in mlir.splitlines():
        if ("loom.layer = 0 : i64" not in line or 'phase<"fwd">' not in line
                or not re.search(
                    r"loom\.(all_gather|reduce_scatter|all_to_all) ", line)
                or '"dp"' not in line):
            continue
        # The whole tensor: the all-gather's result, the reduce-scatter's
        # and the all-to-all's operand (the first tensor type on the line).
        types = re.findall(r"tensor<([0-9x]+)x(f32|i32)>", line)
        dims, _ = types[-1] if "all_gather" in line else types[0]
        elements = 1
        for d in dims.split("x"):
            elements *= int(d)
        total += elements * 4 * (EP - 1) // EP
    return total


def main():
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    runs = [("1 rank x 2 threads", "", 1),
            ("dp=2 (experts on every rank)", "dp=2", 2),
            ("ep=2 (allgather dispatcher)", "ep=2", 2),
            ("ep=2 (alltoall dispatcher)", "ep=2,dispatcher=alltoall", 2)]
    with tempfile.TemporaryDirectory() as tmp:
        step = os.path.join(tmp, "step.mlir")
        tool("loom-models", *MODEL, "--train", "-o", step)
        grouped = os.path.join(tmp, "step-groups.mlir")
        tool("loom-models", *MODEL, "--token-groups", str(EP), "--train", "-o",
             grouped)
        programs, ir = {}, {}
        for name, plan, _ in runs:
            out = os.path.join(tmp, f"{(plan or 'one').replace(',', '_')}.loom")
            partitioned = out + ".partitioned.mlir" if plan else None
            programs[name] = parallel_efficiency.compile_plan(
                grouped if "alltoall" in plan else step, plan, out,
                partitioned)
            if partitioned:
                with open(partitioned) as f:
                    ir[name] = f.read()
        best = parallel_efficiency.best_step_times(runs, programs, k, repeats,
                                                   30)
    print(f"\nbest of {repeats}, {k} steps each: {' '.join(MODEL)}")
    parallel_efficiency.print_efficiency(runs, best, 30)
    local_tokens = TOKENS // EP
    bound = 2 * TOPK * (EP - 1) / EP * HIDDEN * 4
    print(f"one MoE layer forward, bytes received per rank; the lower bound "
          f"(uniform routing, there and back) is {bound:.0f} per token")
    for name, _, _ in runs[2:]:
        moved = dispatcher_bytes(ir[name])
        print(f"  {name}: {moved} bytes, {moved / local_tokens:.0f} per token "
              f"({moved / local_tokens / bound:.2f}x the bound)")


if __name__ == "__main__":
    main()
