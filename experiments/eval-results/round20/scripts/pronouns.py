"""Count, in eval reports' stories, the narration's pronouns none of the cast takes and the
pronoun slips (grounding.foreign_pronouns, grounding.pronoun_slips), with today's worlds: an older
report is judged by the pronouns its worlds declare now.

    python experiments/eval-results/round20/scripts/pronouns.py REPORT_DIR... 
"""
import json
import sys
from collections import Counter

from metagen.grounding import QUOTED, foreign_pronouns, pronoun_slips
from metagen.text import words_of
from metagen.world import load_world

WORLDS = {"ashenmere": "worlds/ashenmere.yaml", "saltgate": "worlds/harbour/world.yaml",
          "nexus-hub": "worlds/nexus-hub.yaml"}

for folder in sys.argv[1:]:
    report = json.load(open(f"{folder}/report.json", encoding="utf-8"))
    wrong, slipped, stories = Counter(), Counter(), Counter()
    for o in report["outputs"]:
        world = load_world(WORLDS[o["world"]])
        cast = [world.character(c) for c in o["request"]["characters"]]
        written = o["text"][len(o["opening"]):] if o["text"].startswith(o["opening"]) else o["text"]
        narration = QUOTED.sub(" ", written)
        foreign = [w for w in words_of(narration) if w in foreign_pronouns(cast)]
        slips = pronoun_slips(narration, cast)
        stories[o["world"]] += 1
        wrong[o["world"]] += bool(foreign or slips)
        slipped[o["world"]] += bool(slips)
    print(folder, {w: f"{wrong[w]}/{stories[w]} wrong ({slipped[w]} with a slip)" for w in stories},
          f"total {sum(wrong.values())}/{sum(stories.values())}")
