"""Parses loom-sim's SVG timeline with xml.etree and prints what it shows:
the title, the rank rows, the compute boxes by kind (from their colour) and
the legend. Usage: check_svg.py FILE RANKS BOXES (exits 1 when the counts
differ)."""

import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
KINDS = {"#4e79a7": "F", "#f28e2b": "B", "#59a14f": "W"}

path, ranks, boxes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
root = ET.parse(path).getroot()
assert root.tag == NS + "svg", root.tag
texts = [t.text or "" for t in root.iter(NS + "text")]
rects = list(root.iter(NS + "rect"))
rows = [r for r in rects if r.get("fill") == "#e6e6e6" and r.get("height") == "28"]
counts = {"F": 0, "B": 0, "W": 0}
for r in rects:
    if r.find(NS + "title") is not None:
        counts[KINDS[r.get("fill")]] += 1
legend = [t for t in texts if t[:2] in ("F ", "B ", "W ") or t == "idle"]
print("title:", texts[0])
print("rows %d, boxes F %d B %d W %d" % (len(rows), counts["F"], counts["B"], counts["W"]))
print("legend", " | ".join(legend))
if len(rows) != ranks or sum(counts.values()) != boxes:
    sys.exit(1)
