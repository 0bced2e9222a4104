"""Re-score eval reports with the current measure (same metrics for every run)."""
import json, sys
from metagen import load_world
from metagen import measure as M
for path in sys.argv[1:]:
    r = json.load(open(path))
    worlds = {w["id"]: load_world(w["path"]) for w in r["worlds"]}
    refs = {k: M.world_reference(w) for k, w in worlds.items()}
    outs = []
    for o in r["outputs"]:
        if o["system"] != "metagen":
            continue
        out = M.Output(o["world"], o["kind"], o["system"], o["request"], o["seed"], o["text"], o["output_tokens"],
                       o["finish_reason"], [tuple(t) for t in o.get("turns", [])], opening=o.get("opening", ""))
        outs.append(M.score(worlds[o["world"]], out, refs[o["world"]], r.get("settings_by_piece", {}).get("x")))
    s = M.summarize(outs, 1.0)
    keys = ["outputs", "grounding_model", "invented_outputs", "invented_relatives", "invented_ranks", "off_world_dates",
            "wrong_tense", "copied", "stock", "repetition", "distinct_2", "tokens"]
    print(path.split("/")[-2], " | ".join(f"{k}={s[k]:.3f}" if isinstance(s[k], float) else f"{k}={s[k]}" for k in keys))
