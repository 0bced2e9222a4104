"""How often the model's own likelihood of a scene (behind today's scene prompt, the default model
and shipped adapter) ranks a blind reader's choice first, over every decided scene pair of earlier
rounds (dpo_scenes.collect); with the critic's score (no log-probability) beside it, and the two
combined at several weights. Writes one JSON line a pair to OUT for later fits.

python logprob_agreement.py OUT.jsonl
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import dpo_scenes as d  # noqa: E402
from critic_agreement import scene_context  # noqa: E402

from metagen.critic import NARRATION_WEIGHTS, judge  # noqa: E402
from metagen.editor import strike  # noqa: E402
from metagen.generator import load_model  # noqa: E402


def main(out_path):
    generator = load_model(None)
    tok = generator.tokenizer
    rows = []
    with open(out_path, "w") as out:
        for pair in d.collect("scene"):
            world, stem = d.worlds_in(pair["folder"])[pair["world"]]
            made = scene_context(world, pair["place"])
            if made is None:
                continue
            prompt, context = made
            ids = tok.encode_chat(prompt.messages)
            row = {"world": stem, "held": stem in d.HELD}
            completions = []
            for side in ("chosen", "rejected"):
                edit = strike(pair[side], context)
                verdict = judge(edit.text, context, struck=len(edit.struck), weights=NARRATION_WEIGHTS)
                completion = tok.encode_plain(pair[side])
                completions.append(completion)
                row[side] = {"critic": verdict.score, "findings": verdict.findings, "tokens": len(completion),
                             "words": len(pair[side].split())}
            sums = generator.score_continuations([ids + c for c in completions], len(ids))
            for side, total in zip(("chosen", "rejected"), sums):
                row[side]["logprob"] = total
                row[side]["mean"] = total / row[side]["tokens"]
            out.write(json.dumps(row) + "\n")
            rows.append(row)
    report(rows)


def report(rows):
    def share(key, subset):
        decided = [r for r in subset if key(r["chosen"]) != key(r["rejected"])]
        won = sum(key(r["chosen"]) > key(r["rejected"]) for r in decided)
        return f"{won}/{len(decided)} ({won / max(1, len(decided)):.0%})"

    for name, subset in (("all", rows), ("held-aside", [r for r in rows if r["held"]])):
        print(f"{name}: {len(subset)} pairs")
        print("  sum log-prob      ", share(lambda s: s["logprob"], subset))
        print("  mean log-prob     ", share(lambda s: s["mean"], subset))
        print("  shorter           ", share(lambda s: -s["words"], subset))
        print("  critic, no lp     ", share(lambda s: s["critic"], subset))
        for w in (2.25, 5, 10, 20):
            print(f"  critic + {w:5.2f} mean", share(lambda s, w=w: s["critic"] + w * s["mean"], subset))


if __name__ == "__main__":
    main(sys.argv[1])
