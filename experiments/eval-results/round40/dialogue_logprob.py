"""How often the model's own likelihood of a dialogue (behind today's dialogue preamble, the default
model and shipped adapter) ranks a blind reader's choice first, over every decided dialogue pair of
earlier rounds. The two transcripts of a pair often share their first lines: each is scored from
the first token where they differ (sum and mean of the token log-probabilities). One JSON line a
pair to OUT.

python dialogue_logprob.py OUT.jsonl
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "round39"))
import dpo_scenes as d  # noqa: E402

from metagen.dialogue import dialogue_preamble  # noqa: E402
from metagen.generator import load_model  # noqa: E402
from metagen.request import DialogueRequest  # noqa: E402


def request_for(world, cast, place):
    ids = []
    for name in [n.strip() for n in cast.split(",")]:
        c = next((c for c in world.characters if c.name == name or c.id == name), None)
        if c is None:
            return None
        ids.append(c.id)
    if len(ids) < 2:
        return None
    loc = next((l.id for l in world.locations if place and (l.name == place or l.id == place)), None)
    return DialogueRequest(characters=tuple(ids), location=loc, turns=12)


def main(out_path):
    generator = load_model(None)
    tok = generator.tokenizer
    rows = []
    skipped = 0
    with open(out_path, "w") as out:
        for pair in d.collect("dialogue", subject="cast"):
            found = d.worlds_in(pair["folder"]).get(pair["world"])
            request = found and request_for(found[0], pair["cast"], pair["header"].get("place", ""))
            if not request:
                skipped += 1
                continue
            world, stem = found
            messages = dialogue_preamble(world, request, count_tokens=tok.count)
            seqs = [tok.encode_chat(messages, suffix=pair[side]) for side in ("chosen", "rejected")]
            shared = 0
            while shared < min(map(len, seqs)) and seqs[0][shared] == seqs[1][shared]:
                shared += 1
            if shared == min(map(len, seqs)):
                skipped += 1
                continue
            sums = generator.score_continuations(seqs, shared)
            row = {"world": stem, "held": stem in d.HELD}
            for side, seq, total in zip(("chosen", "rejected"), seqs, sums):
                row[side] = {"logprob": total, "tokens": len(seq) - shared, "mean": total / (len(seq) - shared)}
            out.write(json.dumps(row) + "\n")
            rows.append(row)
    print(f"{len(rows)} pairs scored, {skipped} skipped")
    for name, subset in (("all", rows), ("held-aside", [r for r in rows if r["held"]])):
        for key in ("mean", "logprob", "tokens"):
            dec = [r for r in subset if r["chosen"][key] != r["rejected"][key]]
            won = sum(r["chosen"][key] > r["rejected"][key] for r in dec)
            print(f"{name:10s} {key:8s} reader's choice higher in {won}/{len(dec)} ({won / max(1, len(dec)):.0%})")


if __name__ == "__main__":
    main(sys.argv[1])
