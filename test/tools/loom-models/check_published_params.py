"""Checks `loom-models NAME --stats` against each model's published size.

Totals must agree within 0.5%. Published active-parameter counts are rounded
figures (12.9B, 39B, 3.3B), so they must agree within one unit of their last
digit.
"""
import json
import subprocess
import sys

# name: (published total, published active or None for dense, source)
PUBLISHED = {
    "llama3-8b": (8.03e9, None, "Meta Llama 3 8B model card"),
    "llama3-70b": (70.6e9, None, "Meta Llama 3 70B model card"),
    "llama3-405b": (405.9e9, None, "Meta Llama 3.1 405B model card"),
    "gpt3-175b": (175.0e9, None, "Brown et al. 2020, table 2.1"),
    "mixtral-8x7b": (46.7e9, "12.9", "Mistral AI, Mixtral of experts"),
    "mixtral-8x22b": (141e9, "39", "Mistral AI, Mixtral 8x22B"),
    "qwen3-30b-a3b": (30.5e9, "3.3", "Qwen3 technical report"),
}

failures = 0
for name, (total, active, source) in PUBLISHED.items():
    stats = json.loads(subprocess.check_output(["loom-models", name, "--stats"]))
    error = abs(stats["total_params"] - total) / total
    ok = error <= 0.005
    if active is None:
        ok = ok and stats["active_params"] == stats["total_params"]
        active_note = "dense"
    else:
        # One unit of the last published digit, in billions.
        unit = 10.0 ** -(len(active.split(".")[1]) if "." in active else 0)
        ours = stats["active_params"] / 1e9
        ok = ok and abs(ours - float(active)) <= unit
        active_note = f"active {ours:.3f}B vs {active}B (+-{unit:g}B)"
    print(f"{name}: total {stats['total_params']/1e9:.3f}B vs published "
          f"{total/1e9:.3g}B ({error*100:.2f}%), {active_note} [{source}]: "
          f"{'ok' if ok else 'MISMATCH'}")
    failures += not ok
    # Forward FLOPs are at least 2 per active weight, per token.
    if stats["flops_per_token"] < 2 * (stats["active_params"] * 0.8):
        print(f"{name}: flops_per_token {stats['flops_per_token']} too low")
        failures += 1
sys.exit(1 if failures else 0)
