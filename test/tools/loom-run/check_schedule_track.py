"""Prints each rank's compute actions per run from a Chrome trace's
`schedule` track (tid 2), consecutive repeats merged:
    rank 0 run 0: F(s0,m0) F(s0,m1) B(s0,m0) B(s0,m1)
Usage: check_schedule_track.py TRACE.json"""

import json
import sys

events = json.load(open(sys.argv[1]))["traceEvents"]
track = {}
for e in events:
    if e.get("tid") != 2 or e.get("ph") != "X":
        continue
    key = (e["pid"], e["args"]["run"])
    track.setdefault(key, []).append((e["ts"], e["name"], e["dur"]))
for (rank, run), spans in sorted(track.items()):
    names = []
    for ts, name, dur in sorted(spans):
        if dur < 0:
            sys.exit(f"rank {rank} run {run}: {name} lasts {dur} us")
        if name[0] in "FBW" and (not names or names[-1] != name):
            names.append(name)
    print(f"rank {rank} run {run}: {' '.join(names)}")
