"""Replay a changed critic on candidates captured by capture.py: which one would it keep now?

    python experiments/eval-results/round19/scripts/replay_critic.py CAPTURE.pkl REPORT.json [--show]
Scenes only: each group is matched to its eval output by the kept text, and judged with the place's
facts as today's critic_context gives them."""
import dataclasses
import json
import pickle
import sys

from metagen.critic import best_index, judge, place_facts
from metagen.world import load_world

WORLDS = {"ashenmere": "worlds/ashenmere.yaml", "saltgate": "worlds/harbour/world.yaml",
          "nexus-hub": "worlds/nexus-hub.yaml"}
groups = pickle.load(open(sys.argv[1], "rb"))
outputs = json.load(open(sys.argv[2]))["outputs"]
worlds = {k: load_world(v) for k, v in WORLDS.items()}
changed, flagged_before, flagged_after = 0, 0, 0
for group in groups:
    kept = group[group[0]["chosen"]]["text"]
    out = next(o for o in outputs if o["text"].strip().endswith(kept.strip()[-60:]))
    loc = worlds[out["world"]].location(out["request"]["location"])
    verdicts = [judge(c["text"], dataclasses.replace(c["context"], facts=place_facts(loc)),
                      **{k: c[k] for k in ("logprob", "tokens", "finish_reason") if k in c}) for c in group]
    new = best_index(verdicts)
    flagged_before += "misplaced" in verdicts[group[0]["chosen"]].findings
    flagged_after += "misplaced" in verdicts[new].findings
    if new != group[0]["chosen"]:
        changed += 1
        if "--show" in sys.argv:
            print(f"{out['world']} seed {out['seed']}\n  OLD {kept}\n  NEW {group[new]['text']}\n")
print(f"{len(groups)} groups: choice changed in {changed}; kept text with a misplaced fact "
      f"{flagged_before} -> {flagged_after}")
