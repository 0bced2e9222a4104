"""Run `metagen eval` with every candidate the critic judges written to a pickle, so a changed
critic can be replayed offline on the same candidates: which one would it keep?

    python experiments/eval-results/round19/scripts/capture.py OUT.pkl -- <metagen eval arguments>
"""
import pickle
import sys

import metagen.pipeline as pipeline
from metagen.cli import app

out, args = sys.argv[1], sys.argv[sys.argv.index("--") + 1:]
groups: list[list[dict]] = []
original_choose, original_judge = pipeline._choose, pipeline.judge


def choose(*a, **k):
    groups.append([])
    result = original_choose(*a, **k)
    if groups[-1]:
        groups[-1][0]["chosen"] = result[0]
    return result


def judge(text, context, **k):
    groups[-1].append({"text": text, "context": context, **k})
    return original_judge(text, context, **k)


pipeline._choose, pipeline.judge = choose, judge
try:
    app(["eval", *args], standalone_mode=False)
finally:
    with open(out, "wb") as f:
        pickle.dump([g for g in groups if g], f)
    print(f"{sum(len(g) for g in groups)} candidates in {len(groups)} groups -> {out}", file=sys.stderr)
