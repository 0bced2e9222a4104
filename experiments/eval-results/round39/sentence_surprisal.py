"""Per-sentence mean log-probability of the model's own story sentences (issue 13 probe).

For each story in an eval report.json: the plan is made again from its world, request and seed,
each paragraph is scored after its beat's chat (as plan.write_story built it), and each sentence's
tokens get the raw model's mean log-probability given everything before it. Prints a JSON line a
sentence: world, seed, beat, sentence index, mean log-prob, min log-prob, tokens, text.

python sentence_surprisal.py REPORT.json OUT.jsonl
"""
import json
import re
import sys

import torch

from metagen.generator import load_model
from metagen.plan import make_plan, story_messages, with_beat
from metagen.request import StoryRequest, resolve_request
from metagen.world.load import load_world

WORLD_FILES = {"nexus-hub": "worlds/nexus-hub.yaml", "ashenmere": "worlds/ashenmere.yaml",
               "saltgate": "worlds/harbour/world.yaml"}
SENTENCE = re.compile(r'[^.!?]+[.!?]+["\u201d\']?\s*')


def world_path(name):
    if name in WORLD_FILES:
        return WORLD_FILES[name]
    import glob
    found = glob.glob(f"corpus/worlds/*{name}*.yaml")
    return found[0]


def main(report_path, out_path):
    report = json.load(open(report_path))
    generator = load_model(None)
    tok = generator.tokenizer
    model = generator.model
    with open(out_path, "w") as out:
        for o in report["outputs"]:
            if o["kind"] != "story" or o["system"] != "metagen":
                continue
            world = load_world(world_path(o["world"]))
            r = o["request"]
            request = StoryRequest(characters=tuple(r["characters"]), location=r["location"],
                                   premise=r["premise"], length=r["length"])
            resolved = resolve_request(world, request)
            plan = make_plan(world, resolved, o["seed"])
            paragraphs = o["text"].split("\n\n")
            chat = story_messages(world, resolved)
            for index, (beat, paragraph) in enumerate(zip(plan, paragraphs)):
                chat = with_beat(chat, beat.instruction)
                prompt_ids = tok.encode_chat(chat)
                # sentence boundaries as character offsets; tokens encoded sentence by sentence
                sentences = [m.group(0) for m in SENTENCE.finditer(paragraph)] or [paragraph]
                ids = list(prompt_ids)
                spans = []
                for s in sentences:
                    piece = tok.encode_plain(s)
                    spans.append((len(ids), len(ids) + len(piece)))
                    ids += piece
                with torch.no_grad():
                    cache = model.new_cache(1, len(ids))
                    logits = model(torch.tensor([ids]), cache, None).float()
                    logprobs = torch.log_softmax(logits[0], dim=-1)
                for j, (s, (a, b)) in enumerate(zip(sentences, spans)):
                    if b <= a:
                        continue
                    lp = [float(logprobs[t - 1, ids[t]]) for t in range(a, b)]
                    out.write(json.dumps({"world": o["world"], "seed": o["seed"], "beat": beat.id, "index": j,
                                          "mean": sum(lp) / len(lp), "min": min(lp), "tokens": len(lp),
                                          "text": s.strip()}, ensure_ascii=False) + "\n")
                chat = [*chat, {"role": "assistant", "content": paragraph}]


if __name__ == "__main__":
    main(*sys.argv[1:])
