"""Pair run A's texts (from a --blind folder and its key) with a new eval's report.json outputs.

usage: repair.py BLIND_DIR REPORT_JSON OUT_DIR SEED "B settings text"
Writes pair-NNN.md, ratings.csv and key.json (A = the blind folder's A) that `metagen eval --unblind` reads.
"""
import csv, io, json, re, sys
from pathlib import Path
from types import SimpleNamespace
from metagen import load_world
from metagen.blind import make_pairs, render_pair

blind, report, out, seed, b_text = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
key = json.load(open(blind / "key.json"))
worlds = {w["id"]: load_world(w["path"]) for w in key["grid"]["worlds"]}
outs_a = []
for e in key["pairs"]:
    text = (blind / f"{e['pair']}.md").read_text()
    t1 = text.split("\n## Text 1\n\n", 1)[1].split("\n\n## Text 2\n\n")[0]
    t2 = text.split("\n\n## Text 2\n\n", 1)[1]
    a = t1 if e["a"] == 1 else t2
    outs_a.append(SimpleNamespace(world=e["world"], kind=e["kind"], request=e["request"], seed=e["seed"],
                                  text=a.strip(), system="metagen"))
rep = json.load(open(report))
outs_b = [SimpleNamespace(world=o["world"], kind=o["kind"], request=o["request"], seed=o["seed"],
                          text=o["text"].strip(), system=o["system"]) for o in rep["outputs"]]
pairs = make_pairs(outs_a, outs_b, seed)
out.mkdir(parents=True)
for p in pairs:
    (out / f"{p.id}.md").write_text(render_pair(p, worlds[p.world]))
sheet = io.StringIO(); w = csv.writer(sheet, lineterminator="\n"); w.writerow(["pair", "preferred", "note"])
w.writerows([p.id, "", ""] for p in pairs)
(out / "ratings.csv").write_text(sheet.getvalue())
newkey = {**key, "seed": seed, "b": b_text, "pairs": [{"pair": p.id, "a": 1 if p.a_first else 2, "world": p.world,
          "kind": p.kind, "request": p.request, "seed": p.seed} for p in pairs]}
(out / "key.json").write_text(json.dumps(newkey, indent=1, ensure_ascii=False) + "\n")
print(len(pairs), "pairs")
