"""Checks a loom-run Chrome trace: ranks, stream tracks and events."""
import json
import sys

path, ranks, events_per_rank = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
trace = json.load(open(path))["traceEvents"]
names = {(e["pid"], e.get("tid")): e["args"]["name"]
         for e in trace if e["ph"] == "M" and e["name"] == "thread_name"}
complete = [e for e in trace if e["ph"] == "X"]
pids = sorted({e["pid"] for e in complete})
assert pids == list(range(ranks)), pids
for pid in pids:
    mine = [e for e in complete if e["pid"] == pid]
    assert len(mine) == events_per_rank, (pid, len(mine))
    assert all(e["dur"] >= 0 for e in mine)
streams = sorted(set(names.values()))
print(f"ranks {pids}; streams {', '.join(reversed(streams))}")
for e in sorted(complete, key=lambda e: e["args"]["instruction"]):
    if e["pid"] == 0 and e["name"] in ("all_reduce", "matmul"):
        print(f"{e['name']} on {names[(0, e['tid'])]} at {e['args']['loc']}")
        if e["name"] == "all_reduce":
            break
