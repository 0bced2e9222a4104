"""A pairwise logistic fit of the critic's findings and the mean token log-probability to readers'
blind scene choices (round39/logprob-pairs.jsonl: 769 pairs), each world held out of its own fit;
compared with the log-probability alone and with today's SCENE_WEIGHTS.

python fit_scene_weights.py [PAIRS.jsonl]
"""
import json
import os
import sys

import torch

from metagen.critic import SCENE_WEIGHTS

HERE = os.path.dirname(__file__)
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "round39", "logprob-pairs.jsonl")
rows = [json.loads(line) for line in open(path)]
names = sorted({k for r in rows for s in ("chosen", "rejected") for k in r[s]["findings"] if k != "logprob"})


def features(side):
    return [side["findings"].get(k, 0.0) for k in names] + [side["mean"]]


def today(side):
    return sum(SCENE_WEIGHTS.get(k, 0) * v for k, v in side["findings"].items() if k != "logprob") + \
        SCENE_WEIGHTS["logprob"] * side["mean"]


def fit(train, l2):
    x = torch.tensor([[a - b for a, b in zip(features(r["chosen"]), features(r["rejected"]))] for r in train])
    w = torch.zeros(x.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.softplus(-(x @ w)).mean() + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return w.detach()


def agree(score, subset):
    dec = [r for r in subset if score(r["chosen"]) != score(r["rejected"])]
    return sum(score(r["chosen"]) > score(r["rejected"]) for r in dec), len(dec)


worlds = sorted({r["world"] for r in rows})
for l2 in (0.3, 0.1, 0.03, 0.01):
    won = total = hwon = htotal = 0
    for world in worlds:
        test = [r for r in rows if r["world"] == world]
        w = fit([r for r in rows if r["world"] != world], l2)
        a, n = agree(lambda s: float(torch.tensor(features(s)) @ w), test)
        won, total = won + a, total + n
        if test[0]["held"]:
            hwon, htotal = hwon + a, htotal + n
    print(f"l2 {l2}: world held out of its fit: {won}/{total} ({won / total:.1%}); held-aside worlds {hwon}/{htotal}")
for label, score in (("mean log-prob", lambda s: s["mean"]), ("today's SCENE_WEIGHTS", today)):
    a, n = agree(score, rows)
    ha, hn = agree(score, [r for r in rows if r["held"]])
    print(f"{label}: {a}/{n} ({a / n:.1%}); held-aside {ha}/{hn}")
w = fit(rows, 0.03)
scale = 10.0 / float(w[-1])
print("fit on all (l2 0.03), scaled so log-prob = 10:")
for k, v in zip(names + ["logprob"], w.tolist()):
    print(f"  {k:12s} {v * scale:7.2f}   today {SCENE_WEIGHTS.get(k, 0):6.2f}")
