#!/usr/bin/env bash
# Sets Loom up, builds it and runs the main demo: a zoo model goes from the
# model zoo through the compiler (verify, memory plan, program) to loom-run
# on CPU ranks; a tensor-parallel example runs on two Gloo processes; then
# tiny-gpt trains on the King James Bible (the training step derived by the
# compiler), stops at a checkpoint, and resumes from it; last, the same
# training step under Megatron's tp=2,sp,dp=2,zero=1 on 4 ranks follows the
# single-rank loss curve, and so do pipeline stages (pp=2,vpp=2,tp=2) and
# context parallelism with ring attention (cp=2,tp=2,sp) and expert
# parallelism (tiny-moe, ep=2,tp=2,sp). The loss curves and checkpoints stay in
# build/demo/tiny-gpt/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
export PATH="$PWD/build/bin:$PATH"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

model=${1:-tiny-llama}
step() { printf '\n== %s\n' "$*"; }
# The loss of one rank's run ($1/loss.csv) next to a parallel run's ($2),
# every 10 steps, and their largest relative difference.
compare_losses() {
  echo "step  loss (1 rank)  loss (4 ranks)"
  paste -d, "$1/loss.csv" "$2/loss.csv" |
    awk -F, 'NR > 1 && (NR - 1) % 10 == 0 { printf "%4d  %13.6f  %14.6f\n", $1, $2, $8 }
      NR > 1 { d = $2 - $8; if (d < 0) d = -d; if (d / $2 > worst) worst = d / $2 }
      END { printf "largest relative difference over %d steps: %.1e\n", NR - 1, worst }'
}

step "loom-models $model --stats"
loom-models "$model" --stats

step "loom-models $model: the forward graph in the loom dialect (first lines)"
loom-models "$model" -o "$out/$model.mlir"
sed -n '3,9p' "$out/$model.mlir" | cut -c1-150

step "loom-opt: parse, verify, print; the round trip is identical"
loom-opt "$out/$model.mlir" -o "$out/roundtrip.mlir"
cmp "$out/$model.mlir" "$out/roundtrip.mlir" && echo "identical ($(grep -c ' = loom\.' "$out/$model.mlir") loom ops)"

step "loom-forward-to-program: simplify, then plan one arena per rank"
loom-opt "$out/$model.mlir" -loom-forward-to-program="report=true" -mlir-print-debuginfo -o "$out/planned.mlir" 2>&1 | grep remark

step "loom-translate: the per-rank program (text dump, first instructions)"
loom-translate --loom-to-program "$out/planned.mlir" -o "$out/$model.loom"
# (Through a file: with pipefail, `| head` would stop loom-dump by SIGPIPE.)
loom-dump "$out/$model.loom" >"$out/$model.dump"
grep -m 8 -E '^[0-9]+: ' "$out/$model.dump"

step "loom-run: one rank"
loom-run "$out/$model.loom" --outputs "$out/run" --trace "$out/trace.json"
echo "outputs: $(ls "$out/run" | wc -l) .npy files; trace: $(grep -c '"ph":"X"' "$out/trace.json") events"

step "loom-run: a tensor-parallel MLP on 2 processes over Gloo"
loom-run examples/tensor-parallel-mlp.mlir --nproc 2 --comm gloo

# Training: the compiler derives the step (forward, backward, AdamW) from the
# forward graph; loom-run trains it on the text the setup installed.
train=build/demo/tiny-gpt
rm -rf "$train"
mkdir -p "$train"
loom-models tiny-gpt --vocab 256 --seq 64 --batch 16 -o "$train/tiny-gpt.mlir"

step "loom-models tiny-gpt --train: the training step, op by op phase"
loom-models tiny-gpt --vocab 256 --seq 64 --batch 16 --train -o "$train/step.mlir"
for phase in fwd bwd-input bwd-weight; do
  printf '%-11s %4d ops\n' "$phase" "$(grep -c "loom.phase<\"$phase\">" "$train/step.mlir")"
done
echo "adamw       $(grep -c 'loom.adamw' "$train/step.mlir") updates"

step "loom-run --train: tiny-gpt on the King James Bible, 1500 of 3000 steps"
loom-run "$train/tiny-gpt.mlir" --train --steps 3000 --warmup 100 --lr 3e-3 \
  --save "$train/checkpoints" --save-interval 1500 --exit-interval 1500

step "loom-run --train --load: resumed from the checkpoint to step 3000"
loom-run "$train/tiny-gpt.mlir" --train --steps 3000 --warmup 100 --lr 3e-3 \
  --load "$train/checkpoints" --save "$train/checkpoints"
echo "the loss curve: $train/checkpoints/loss.svg (and loss.csv)"

step "loom-run --train --plan tp=2,sp,dp=2,zero=1 --nproc 4: the same training on 4 ranks"
# Tensor parallelism with sequence parallelism over 2 ranks, data parallelism
# with the distributed optimizer (ZeRO-1) over 2: one per-rank program,
# compiled by the loom-parallelize pipeline.
loom-run "$train/tiny-gpt.mlir" --train --steps 100 --warmup 10 --lr 3e-3 \
  --log "$train/one-rank" --quiet
loom-run "$train/tiny-gpt.mlir" --train --steps 100 --warmup 10 --lr 3e-3 \
  --plan tp=2,sp,dp=2,zero=1 --nproc 4 --log "$train/four-ranks"
compare_losses "$train/one-rank" "$train/four-ranks"

step "loom-run --train --plan pp=2,vpp=2,tp=2 --nproc 4: pipeline stages, interleaved 1F1B"
# tiny-gpt with 4 layers: 2 pipeline ranks with 2 model chunks each (layers
# 0 and 2 on rank 0, 1 and 3 on rank 1), each stage split over 2 tensor-
# parallel ranks; 4 microbatches per step in Megatron's interleaved order.
loom-models tiny-gpt --vocab 256 --seq 64 --batch 16 --layers 4 -o "$train/tiny-gpt-4.mlir"
loom-run "$train/tiny-gpt-4.mlir" --train --steps 30 --warmup 5 --lr 3e-3 \
  --micro-batches 4 --log "$train/pp-one-rank" --quiet
loom-run "$train/tiny-gpt-4.mlir" --train --steps 30 --warmup 5 --lr 3e-3 \
  --micro-batches 4 --plan pp=2,vpp=2,tp=2 --nproc 4 --log "$train/pp-four-ranks"
compare_losses "$train/pp-one-rank" "$train/pp-four-ranks"

step "loom-run --train --plan cp=2,tp=2,sp --nproc 4: context parallelism, ring attention"
# tiny-llama over 64 positions: each cp rank holds 32 of them (16 per rank
# of its tensor-parallel pair between the tensor-parallel regions); every
# attention passes the key/value blocks around the cp ranks (Megatron's
# default cp_comm=p2p) and merges the blocks by their log-sum-exp.
loom-models tiny-llama --vocab 256 --seq 64 --batch 16 -o "$train/tiny-llama.mlir"
loom-run "$train/tiny-llama.mlir" --train --steps 30 --warmup 5 --lr 3e-3 \
  --log "$train/cp-one-rank" --quiet
loom-run "$train/tiny-llama.mlir" --train --steps 30 --warmup 5 --lr 3e-3 \
  --plan cp=2,tp=2,sp --nproc 4 --log "$train/cp-four-ranks"
compare_losses "$train/cp-one-rank" "$train/cp-four-ranks"

step "loom-run --train --plan ep=2,tp=2,sp --nproc 4: expert parallelism"
# tiny-moe: each of the 2 data ranks holds 2 of the 4 experts (and half of
# each expert's ffn, over tp); tokens are all-gathered into each rank's
# dispatch of its experts and the combined sums reduce-scattered back.
loom-models tiny-moe --vocab 256 --seq 64 --batch 16 -o "$train/tiny-moe.mlir"
loom-run "$train/tiny-moe.mlir" --train --steps 30 --warmup 5 --lr 3e-3 \
  --log "$train/ep-one-rank" --quiet
loom-run "$train/tiny-moe.mlir" --train --steps 30 --warmup 5 --lr 3e-3 \
  --plan ep=2,tp=2,sp --nproc 4 --log "$train/ep-four-ranks"
compare_losses "$train/ep-one-rank" "$train/ep-four-ranks"

step "loom-sim --model llama3-70b: a Megatron-style plan on 64 H100s, priced"
loom-sim --model llama3-70b --plan 'tp=8,sp,pp=4,vpp=5,dp=2,gbs=128' --cluster h100-ib:8 |
  grep -E '^(pipeline|step time|tokens/s|MFU|memory peak)'
