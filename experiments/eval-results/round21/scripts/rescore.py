"""Score eval reports' metagen outputs again with today's measures and today's worlds, so that an
old report (issue 13's 0.1.0 baseline lacks most of today's columns) and a new one are counted by
the same code. Prints one row per report and kind; settings' script guards are the world's.

    python experiments/eval-results/round21/scripts/rescore.py REPORT.json...
"""
import json
import sys

from metagen import load_world
from metagen.measure import Output, score, summarize, world_reference

WORLDS = {"ashenmere": "worlds/ashenmere.yaml", "saltgate": "worlds/harbour/world.yaml",
          "nexus-hub": "worlds/nexus-hub.yaml"}
FIELDS = {f for f in Output.__dataclass_fields__}
COLUMNS = [("grounding_model", "grounding (model's words)", "%"), ("invented_outputs", "invented (outputs)", "%"),
           ("unknown_names", "unknown names (lines)", "%"), ("garbled", "garbled", "n"), ("copied", "copied", "%"),
           ("wrong_kin", "wrong kin", "%"), ("invented_relatives", "made-up relatives", "%"),
           ("invented_ranks", "made-up ranks", "%"), ("off_world_dates", "off-world dates", "%"),
           ("wrong_tense", "wrong tense", "%"), ("wrong_pronoun", "wrong pronoun", "%"),
           ("repetition", "repetition", "%"), ("words", "words", "n")]
worlds = {w: load_world(path) for w, path in WORLDS.items()}
references = {w: world_reference(world) for w, world in worlds.items()}
print("| report | kind | " + " | ".join(c[1] for c in COLUMNS) + " |")
print("|---|---|" + "---|" * len(COLUMNS))
for path in sys.argv[1:]:
    report = json.load(open(path, encoding="utf-8"))
    outputs = []
    for o in report["outputs"]:
        if o["system"] != "metagen":
            continue
        data = {k: v for k, v in o.items() if k in FIELDS}
        data["turns"] = [tuple(t) for t in o.get("turns", [])]
        kept = {k: data[k] for k in ("world", "kind", "system", "request", "seed", "text", "output_tokens",
                                     "finish_reason", "turns", "opening") if k in data}
        outputs.append(score(worlds[o["world"]], Output(**kept), references[o["world"]]))
    for kind in ("story", "scene", "dialogue"):
        m = summarize([o for o in outputs if o.kind == kind], 0)
        if kind == "dialogue":
            m["copied"] = m["copied"]  # per line: sample lines copied
        cells = []
        for key, _, unit in COLUMNS:
            value = m.get(key)
            cells.append("-" if value is None or (kind == "dialogue" and key in ("wrong_tense", "wrong_pronoun"))
                         else f"{100 * value:.1f}%" if unit == "%" else f"{value:.0f}" if key == "words" else str(value))
        print(f"| {path.split('/')[-2]} | {kind} | " + " | ".join(cells) + " |")
