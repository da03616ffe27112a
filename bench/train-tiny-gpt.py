#!/usr/bin/python3
"""tiny-gpt trained on the default text: how fast the loss falls below 2.0.

The README's demo configuration, `loom-models tiny-gpt --vocab 256 --seq 64
--batch 16` trained by `loom-run --train --warmup 100 --lr 3e-3` on the King
James Bible (bytes as tokens), on one CPU rank with the default threads.
Prints the steps and seconds until the loss is clearly below 2.0 nats per
byte (the mean of the last 100 steps' losses below 2.0), the curve's start
and end, tokens/s, and, beside them, the losses of models that know less:
uniform over 256 bytes (ln 256) and the text's byte frequencies (its unigram
entropy, computed here).

  bench/train-tiny-gpt.py [--steps 3000]
"""

import argparse
import collections
import csv
import math
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "bin")
WORK = os.path.join(ROOT, "build", "bench", "train-tiny-gpt")
DATA = os.path.join(ROOT, "build", "data", "kjv.txt")
WINDOW = 100


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3000)
    args = p.parse_args()
    os.makedirs(WORK, exist_ok=True)
    model = os.path.join(WORK, "tiny-gpt.mlir")
    config = ["--vocab", "256", "--seq", "64", "--batch", "16"]
    train = ["--train", "--steps", str(args.steps), "--warmup", "100",
             "--lr", "3e-3"]
    subprocess.run([os.path.join(BIN, "loom-models"), "tiny-gpt", *config,
                    "-o", model], check=True)
    log = os.path.join(WORK, "log")
    subprocess.run([os.path.join(BIN, "loom-run"), model, *train, "--log",
                    log, "--quiet"], check=True)
    rows = list(csv.DictReader(open(os.path.join(log, "loss.csv"))))
    loss = [float(r["loss"]) for r in rows]
    elapsed = [float(r["elapsed_s"]) for r in rows]
    mean = lambda xs: sum(xs) / len(xs)

    below = next((i for i in range(WINDOW - 1, len(loss))
                  if mean(loss[i - WINDOW + 1:i + 1]) < 2.0), None)
    tokens = 16 * 64
    counts = collections.Counter(open(DATA, "rb").read())
    total = sum(counts.values())
    unigram = -sum(c / total * math.log(c / total) for c in counts.values())

    print("tiny-gpt " + " ".join(config) + ", loom-run " + " ".join(train))
    print(f"one CPU rank, default threads; data {DATA}")
    print()
    print(f"{'':44s}{'nats/byte':>10s}")
    print(f"{'uniform over 256 bytes (ln 256)':44s}{math.log(256):10.3f}")
    print(f"{'byte frequencies of the text (unigram)':44s}{unigram:10.3f}")
    print(f"{'loss, step 1':44s}{loss[0]:10.3f}")
    print(f"{'mean loss, steps 1-%d' % WINDOW:44s}{mean(loss[:WINDOW]):10.3f}")
    print(f"{'mean loss, last %d steps' % WINDOW:44s}"
          f"{mean(loss[-WINDOW:]):10.3f}")
    print(f"{'loss, step %d' % len(loss):44s}{loss[-1]:10.3f}")
    print()
    if below is None:
        print(f"the mean of {WINDOW} steps never fell below 2.0 "
              f"in {len(loss)} steps")
    else:
        print(f"mean of the last {WINDOW} losses below 2.0: at step "
              f"{below + 1}, after {elapsed[below]:.1f} s "
              f"({(below + 1) * tokens / 1e6:.2f} M tokens)")
    print(f"{len(loss)} steps in {elapsed[-1]:.1f} s: "
          f"{len(loss) * tokens / elapsed[-1]:,.0f} tokens/s "
          f"({elapsed[-1] / len(loss) * 1e3:.1f} ms a step)")


if __name__ == "__main__":
    main()
