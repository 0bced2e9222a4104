"""Per side of a filled blind folder: preferred, kept as a draft (the note's keep1/keep2/keep both),
mean words, and texts that slip out of the world's tense (grounding.narration_tense).

python tally.py BLIND_DIR [WORLD.yaml ...]
"""
import csv
import json
import re
import statistics
import sys

from metagen.grounding import narration_tense
from metagen.world.load import load_world

folder = sys.argv[1]
key = json.load(open(f"{folder}/key.json"))
tenses = {}
for path in sys.argv[2:]:
    w = load_world(path, allow_outside=True)
    tenses[w.id if hasattr(w, "id") else path] = w.style.tense_for("scene")
sheet = {r["pair"]: r for r in csv.DictReader(open(f"{folder}/ratings.csv"))}
stats = {s: {"preferred": 0, "kept": 0, "words": [], "tense": 0} for s in "ab"}
for p in key["pairs"]:
    text = open(f"{folder}/{p['pair']}.md").read()
    parts = re.split(r"^## Text [12]\s*$", text, flags=re.M)
    one, two = parts[1].strip(), parts[2].strip()
    if one == two:
        continue
    by_side = {"a": one if p["a"] == 1 else two, "b": two if p["a"] == 1 else one}
    row = sheet[p["pair"]]
    note = row["note"].lower()
    for side, number in (("a", p["a"]), ("b", 3 - p["a"])):
        stats[side]["preferred"] += row["preferred"].strip() == str(number)
        stats[side]["kept"] += f"keep{number}" in note or "keep both" in note
        stats[side]["words"].append(len(by_side[side].split()))
        want = tenses.get(p["world"])
        got = narration_tense(by_side[side])
        stats[side]["tense"] += bool(want and got and got != want)
for side, s in stats.items():
    print(f"{side}: preferred {s['preferred']}, kept {s['kept']}, words median {statistics.median(s['words'])}, "
          f"mean {statistics.mean(s['words']):.1f}, wrong tense {s['tense']} of {len(s['words'])}")
