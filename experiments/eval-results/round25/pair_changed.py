"""Blind pairs of only the outputs whose text differs between two `metagen eval` reports of one grid.

usage: pair_changed.py REPORT_A REPORT_B OUT_DIR SEED "A described" "B described" [KIND ...]
Like round9-openings/pair_reports.py, but a pair whose two texts are the same is left out (a reader
cannot prefer either), and KINDs (story, scene, dialogue) limit which outputs are paired.
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from metagen import load_world
from metagen.blind import write_blind


def outputs(path: str):
    report = json.load(open(path))
    return report, {(o["world"], o["kind"], o["seed"], json.dumps(o["request"], sort_keys=True)): o
                    for o in report["outputs"]}


(report_a, a), (report_b, b) = outputs(sys.argv[1]), outputs(sys.argv[2])
kinds = set(sys.argv[7:]) or {"story", "scene", "dialogue"}
keys = [k for k in a if k in b and k[1] in kinds and a[k]["text"] != b[k]["text"]]


def run(report, chosen):
    return SimpleNamespace(outputs=[SimpleNamespace(world=o["world"], kind=o["kind"], request=o["request"],
                                                    seed=o["seed"], text=o["text"], system=o["system"])
                                    for o in (chosen[k] for k in keys)],
                           settings={**report["settings"], "variant": report["settings"].get("variant", "metagen")},
                           model=report["model"], worlds=report["worlds"])


worlds = [load_world(w["path"]) for w in report_a["worlds"]]
pairs = write_blind(Path(sys.argv[3]), worlds, run(report_a, a), run(report_b, b), {"code": sys.argv[5]},
                    {"code": sys.argv[6]}, int(sys.argv[4]))
print(len(pairs), "pairs of", sum(1 for k in a if k in b and k[1] in kinds), "outputs")
