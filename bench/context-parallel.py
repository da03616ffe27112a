#!/usr/bin/env python3
"""Context parallelism on 2 CPU ranks against 1 rank, for a long sequence.

Builds an attention-heavy Llama training step (`loom-models tiny-llama
--layers 2 --hidden 128 --heads 4 --kv-heads 4 --ffn 256 --seq 8192 --vocab
256 --batch 1 --train`: causal attention over 8192 positions is most of its
work) and compiles it with loom-opt + loom-translate single-rank and under
cp=2 with each exchange: cp_comm=p2p (ring attention), all_gather, a2a
(Ulysses). As bench/parallel-efficiency.py does (its step_time), the
single-rank program runs with 2 OpenMP/OpenBLAS threads and each 2-rank
program with 1 thread per rank (`--comm local`), so every run has the same
2 cores for the same tokens; a step's time is the span of the traced
instructions / K. Efficiency = T(1 rank) / T(2 ranks): 100% is two ranks
doing one rank's work in the same time.

For the ring it also prints, from each rank's trace, the time of its
key/value transfers (collective_permute, asynchronous on the comm thread;
a transfer lasts until the other rank has sent its block too) and the time
the compute thread waited for them (event_wait): the fraction of transfer
time hidden behind the block computations is 1 - wait / transfer. p2p and
all_gather take Megatron's load-balanced chunks (rank r holds chunks r and
3 - r of 4), so both ranks do half of the causal work.

With MODEL `gpt` the same dimensions as tiny-gpt (a learned position
table, which takes the load-balanced order too: the table is read in it
and its gradient put back) under p2p and all_gather.

    python3 bench/context-parallel.py [K] [REPEATS] [llama|gpt]
                                                     (default 2 2 llama)
"""
import importlib.util
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "parallel_efficiency", os.path.join(HERE, "parallel-efficiency.py"))
parallel_efficiency = importlib.util.module_from_spec(spec)
spec.loader.exec_module(parallel_efficiency)
tool = parallel_efficiency.tool

DIMENSIONS = ("--layers 2 --hidden 128 --heads 4 --kv-heads 4 --ffn 256 "
              "--seq 8192 --vocab 256 --batch 1").split()


def transfer_hidden(program, steps):
    """Per rank: key/value transfer time and compute-thread wait per step."""
    with open(program + ".trace.json") as f:
        events = json.load(f)
    events = [e for e in events.get("traceEvents", events) if "dur" in e]
    figures = []
    for rank in (0, 1):
        mine = [e for e in events if e["pid"] == rank]
        transfer = sum(e["dur"] for e in mine
                       if e["name"] == "collective_permute") / 1e6 / steps
        wait = sum(e["dur"] for e in mine if e["name"] == "event_wait" and
                   e["tid"] == 0) / 1e6 / steps
        figures.append((transfer, wait))
    return figures


def main():
    k = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    model = "tiny-" + (sys.argv[3] if len(sys.argv) > 3 else "llama")
    runs = [("1 rank x 2 threads", "", 1),
            ("cp=2 p2p (ring)", "cp=2,cp_comm=p2p", 2),
            ("cp=2 all_gather", "cp=2,cp_comm=all_gather", 2)]
    if model == "tiny-llama":
        runs.append(("cp=2 a2a (Ulysses)", "cp=2,cp_comm=a2a", 2))
    hidden = []
    with tempfile.TemporaryDirectory() as tmp:
        step = os.path.join(tmp, "step.mlir")
        tool("loom-models", model, *DIMENSIONS, "--train", "-o", step)
        programs = {
            name: parallel_efficiency.compile_plan(
                step, plan,
                os.path.join(tmp, f"{plan.replace(',', '_') or 'one'}.loom"))
            for name, plan, _ in runs}

        def keep_ring_figures(name):
            if "ring" in name:
                hidden[:] = transfer_hidden(programs[name], k)

        best = parallel_efficiency.best_step_times(runs, programs, k, repeats,
                                                   22, keep_ring_figures)
    print(f"\nbest of {repeats}, {k} steps each: {model}, 8192 causal "
          f"positions, 2 layers")
    parallel_efficiency.print_efficiency(runs, best, 22)
    for rank, (transfer, wait) in enumerate(hidden):
        print(f"ring, rank {rank} per step: key/value transfers "
              f"{transfer:.3f} s, compute waiting for them {wait:.3f} s: "
              f"{1 - wait / transfer if transfer else 0:.0%} of the transfer "
              f"time hidden")


if __name__ == "__main__":
    main()
