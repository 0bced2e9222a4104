"""Pieces of one `metagen eval` report, shuffled and anonymous, for a reader who rates each alone
(not against another): piece-NNN.md (the request, then the text), sheet.csv to fill and key.json
(not for readers: which output each piece is).

usage: pieces_for_reading.py REPORT.json OUT_DIR SEED
"""
import csv
import json
import random
import sys
from pathlib import Path

from metagen import load_world
from metagen.measure import recorded_request
from metagen.prompts import resolve_request

report, out, seed = json.load(open(sys.argv[1])), Path(sys.argv[2]), int(sys.argv[3])
out.mkdir(parents=True)
worlds = {w["id"]: load_world(w["path"]) for w in report["worlds"]}
outputs = [o for o in report["outputs"] if o["system"] == "metagen"]
random.Random(seed).shuffle(outputs)
key = []
with open(out / "sheet.csv", "w", newline="") as sheet:
    writer = csv.writer(sheet)
    writer.writerow(["piece", "coherence", "faithfulness", "style", "keep", "defects"])
    for i, o in enumerate(outputs, 1):
        piece = f"piece-{i:03d}"
        world = worlds[o["world"]]
        resolved = resolve_request(world, recorded_request(o["request"]))
        lines = [f"# {piece}", "", f"- kind: {o['kind']}", f"- world: {world.name} (worlds/{Path(world.path).name})"]
        if resolved.characters:
            lines.append(f"- cast: {', '.join(c.name for c in resolved.characters)}")
        if resolved.location:
            lines.append(f"- place: {resolved.location.name}")
        lines += ["", "## Text", "", o["text"].strip() or "(no text)", ""]
        (out / f"{piece}.md").write_text("\n".join(lines), encoding="utf-8")
        writer.writerow([piece, "", "", "", "", ""])
        key.append({"piece": piece, "world": o["world"], "kind": o["kind"], "seed": o["seed"], "request": o["request"]})
(out / "key.json").write_text(json.dumps(key, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
print(len(key), "pieces")
