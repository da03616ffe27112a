"""Reads the stash and arena remarks of three recompute policies and prints
whether each figure falls from none to selective to full."""
import re
import sys

figures = {}
for path in sys.argv[1:]:
    text = open(path).read()
    stash = int(re.search(r"stash: \d+ tensors, (\d+) bytes", text).group(1))
    arena = int(re.search(r"memory plan: arena (\d+) bytes", text).group(1))
    figures[path] = (stash, arena)
values = list(figures.values())
for i, name in enumerate(["stash bytes", "arena bytes"]):
    series = [v[i] for v in values]
    falling = all(a > b for a, b in zip(series, series[1:]))
    print(f"{name}: " + (" > ".join(["none", "selective", "full"])
                         if falling else f"NOT FALLING {series}"))
