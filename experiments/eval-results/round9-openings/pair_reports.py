"""Blind pairs from two `metagen eval` report.json files of the same grid (two code versions).

usage: pair_reports.py REPORT_A REPORT_B OUT_DIR SEED "A described" "B described"
Writes pair-NNN.md, ratings.csv and key.json (metagen.blind.write_blind) that `metagen eval --unblind` reads.
"""
import json
import sys
from pathlib import Path
from types import SimpleNamespace

from metagen import load_world
from metagen.blind import write_blind


def run(path: str) -> SimpleNamespace:
    report = json.load(open(path))
    outputs = [SimpleNamespace(world=o["world"], kind=o["kind"], request=o["request"], seed=o["seed"],
                               text=o["text"], system=o["system"]) for o in report["outputs"]]
    settings = {**report["settings"], "variant": report["settings"].get("variant", "metagen")}
    return SimpleNamespace(outputs=outputs, settings=settings, model=report["model"], worlds=report["worlds"])


a, b = run(sys.argv[1]), run(sys.argv[2])
worlds = [load_world(w["path"]) for w in a.worlds]
pairs = write_blind(Path(sys.argv[3]), worlds, a, b, {"code": sys.argv[5]}, {"code": sys.argv[6]}, int(sys.argv[4]))
print(len(pairs), "pairs")
