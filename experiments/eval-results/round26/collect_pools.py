"""Run `metagen eval` with every story beat's and scene's candidate pool logged to a JSONL file.

Each line: the kind, the world, the prompt as the model read it, the beat instruction (stories),
every candidate's text as the critic judged it (after the editor), its findings and score, and
the critic's pick. Readers later pick the best and worst of each pool; fit_weights.py compares.

usage: PYTHONPATH=. python collect_pools.py POOLS.jsonl EVAL-ARGS...
"""
import json
import sys

import metagen.pipeline as pipeline
import metagen.plan as plan
from metagen.critic import best_index

out = open(sys.argv[1], "a", encoding="utf-8")
_draw, _choose, _write_story = plan._draw_candidates, pipeline._choose, plan.write_story
CURRENT = {"world": ""}


def write_story(generator, world, request, cfg, **kw):
    CURRENT["world"] = world.id
    return _write_story(generator, world, request, cfg, **kw)


def draw(generator, ids, beat_cfg, count, beat_seed, context, reuse, **kw):
    seeds, options, verdicts, cuts = _draw(generator, ids, beat_cfg, count, beat_seed, context, reuse, **kw)
    out.write(json.dumps({"kind": "story", "prompt": generator.tokenizer.decode(ids, skip_special=False), "world": CURRENT["world"], "beat_seed": beat_seed,
                          "candidates": [{"text": o.text, "score": v.score, "findings": v.findings,
                                          "struck": [list(c) for c in cut]}
                                         for o, v, cut in zip(options, verdicts, cuts)],
                          "chosen": best_index(verdicts)}, ensure_ascii=False) + "\n")
    out.flush()
    return seeds, options, verdicts, cuts


def choose(world, prompt, prompt_text, cfg, options, seeds, policy=None, starts=None):
    chosen, record = _choose(world, prompt, prompt_text, cfg, options, seeds, policy, starts)
    if record and prompt.request.kind == "scene":
        out.write(json.dumps({"kind": "scene", "world": world.id, "prompt": prompt_text, "seed": seeds[0],
                              "candidates": [{"text": o.text, "score": r["score"],
                                              "findings": {k: v for k, v in r.items() if k not in ("seed", "start", "score")}}
                                             for o, r in zip(options, record["candidates"])],
                              "chosen": chosen}, ensure_ascii=False) + "\n")
        out.flush()
    return chosen, record


plan._draw_candidates, pipeline._choose, plan.write_story = draw, choose, write_story
pipeline.write_story = write_story
from metagen.cli import app  # noqa: E402

app(sys.argv[2:])
