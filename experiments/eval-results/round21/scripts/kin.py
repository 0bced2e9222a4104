"""Count, in eval reports' stories, the family words narration gives a character against the
world's ties (grounding.wrong_kin and grounding.narrated_kin, as measure counts them), with
today's code: an older report is judged by the same reader as a new one.

    python experiments/eval-results/round21/scripts/kin.py REPORT.json...
"""
import json
import sys
from collections import Counter

from metagen.grounding import kinship, narrated_kin, wrong_kin
from metagen.world import load_world

WORLDS = {"ashenmere": "worlds/ashenmere.yaml", "saltgate": "worlds/harbour/world.yaml",
          "nexus-hub": "worlds/nexus-hub.yaml"}

for path in sys.argv[1:]:
    report = json.load(open(path, encoding="utf-8"))
    wrong, stories = Counter(), Counter()
    for o in report["outputs"]:
        kin = kinship(load_world(WORLDS[o["world"]]))
        written = o["text"][len(o["opening"]):] if o["text"].startswith(o["opening"]) else o["text"]
        found = (wrong_kin(written, kin) + narrated_kin(written, kin)) if kin else []
        stories[o["world"]] += 1
        wrong[o["world"]] += bool(found)
        if found:
            print(f"  {o['world']} seed {o['seed']}: {found}")
    print(path, {w: f"{wrong[w]}/{stories[w]}" for w in stories}, f"total {sum(wrong.values())}/{sum(stories.values())}")
