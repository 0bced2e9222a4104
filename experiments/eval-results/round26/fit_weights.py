"""How often the critic picks what readers picked, and critic weights fitted to readers' picks.

usage: PYTHONPATH=. python fit_weights.py SHEETS_DIR POOLS.jsonl... [--lambda L] [--fix a,b] [--extra] [--line-faults]
       [--test SHEETS_DIR POOLS.jsonl...]
Reads SHEETS_DIR/key.json and the filled SHEETS_DIR/sheet-*.md. For each pool a reader's BEST beats
every other candidate and every candidate beats the WORST: those pairs train a logistic model of
score differences (L2 toward today's weights). Reports, for today's weights and for weights fitted
by leave-one-world-out, the share of pools whose pick the reader named BEST or WORST, and the
pairwise agreement. Prints the weights fitted on every pool.
"""
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import torch

from metagen.critic import WEIGHTS
from metagen.text import split_sentences, words_of

args = [a for a in sys.argv[1:] if a not in ("--extra", "--line-faults")]
lam = 1.0
if "--lambda" in args:
    i = args.index("--lambda")
    lam = float(args[i + 1])
    del args[i:i + 2]
fixed: list[str] = ["empty", "rating"]  # --fix a,b: these findings keep today's weights too
if "--fix" in args:
    i = args.index("--fix")
    fixed += args[i + 1].split(",")
    del args[i:i + 2]
test = None
if "--test" in args:  # --test SHEETS_DIR POOLS.jsonl...: judged by weights fitted on the rest
    i = args.index("--test")
    test, args = args[i + 1:], args[:i]


def read_votes(sheets: Path) -> dict:
    votes = defaultdict(list)  # pool id -> [(best letter, worst letter)] (more than one where readers overlap)
    for sheet in sorted(sheets.glob("sheet-*.md")):
        text = sheet.read_text(encoding="utf-8")
        for block in re.split(r"(?m)^## Pool ", text)[1:]:
            pid = block.split()[0]
            best = re.search(r"(?m)^BEST:\s*([A-Z])", block)
            worst = re.search(r"(?m)^WORST:\s*([A-Z])", block)
            if best and worst and best.group(1) != worst.group(1):
                votes[pid].append((best.group(1), worst.group(1)))
    return votes

EXTRA = {"words50": 0.0, "one_sentence": 0.0}  # not critic findings (yet): measured here from the text
# dialogue.judge_lines takes 10 from an empty line, outside the findings: the same here, held fixed
LINE_EXTRA = {"empty": -10.0, **({k: 0.0 for k in ("bare", "stutter", "parrot")} if "--line-faults" in sys.argv else {})}
names = sorted(WEIGHTS) + list(LINE_EXTRA) + (list(EXTRA) if "--extra" in sys.argv else [])
index = {k: i for i, k in enumerate(names)}


# Tried in round twenty-six as critic findings of dialogue lines (LINE_WEIGHTS: these three, details
# x 0.25) and not kept: readers' picks among line candidates favoured them, whole dialogues did not.
LINE_FAULT_WEIGHTS = {"bare": -0.25, "stutter": -1.0, "parrot": -0.5}
_STOP = frozenset("""a an the and or but of in on at to by with from for into over under this that these those
its his her their there here with without about above below after before while where when which what who
is are was were be been being has have had do does did not no very more most some any each every one two
like than then them they you your our we she he it""".split())  # critic._STOP_WORDS as of 0.15.0


def line_faults(line: str, answered: str) -> dict[str, float]:
    """A dialogue line that is bare (one or two words), stutters (a word twice running, or two content
    words said again) or parrots the line it answers (takes up one of its content words)."""
    words = words_of(line)
    content = [w for w in words if w not in _STOP and len(w) > 2]
    faults = {}
    if 0 < len(words) < 3:
        faults["bare"] = 1.0
    if len(content) - len(set(content)) >= 2 or any(a == b for a, b in zip(words, words[1:])):
        faults["stutter"] = 1.0
    if set(content) & {w for w in words_of(answered) if w not in _STOP and len(w) > 2}:
        faults["parrot"] = 1.0
    return faults


def features(candidate, pool=None) -> torch.Tensor:
    x = torch.zeros(len(names), dtype=torch.float64)
    for k, v in candidate["findings"].items():
        if k in index:
            x[index[k]] = v
    if "words50" in index:
        x[index["words50"]] = min(len(candidate["text"].split()), 100) / 50
        x[index["one_sentence"]] = float(len(split_sentences(candidate["text"])) <= 1)
    if pool is not None and pool["kind"] == "dialogue":
        x[index["empty"]] = float(not candidate["text"].strip())
        answered = pool["transcript"][-1][1] if pool["transcript"] else ""
        for k, v in line_faults(candidate["text"], answered).items():
            if k in index:
                x[index[k]] = v
    return x


prior = torch.tensor([{**WEIGHTS, **EXTRA, **LINE_EXTRA}[k] for k in names], dtype=torch.float64)


def read_items(sheets: Path, pool_files: list[str]) -> tuple[list, dict]:
    """(pool id, world, X [n, f], groups {letter: [idx]}, best, worst, kind) per reader's vote."""
    pools = [json.loads(line) for path in pool_files for line in open(path, encoding="utf-8")]
    key = json.load(open(sheets / "key.json"))
    votes = read_votes(sheets)
    items = []
    for pid, vs in votes.items():
        entry = key[pid]
        pool = pools[entry["pool"]]
        X = torch.stack([features(c, pool) for c in pool["candidates"]])
        world = pool.get("world") or "?"
        for best, worst in vs:
            items.append((pid, world, X, entry["letters"], best, worst, pool["kind"]))
    return items, votes


items, votes = read_items(Path(args[0]), args[1:])


free = torch.tensor([k not in fixed for k in names])


def pairs(sel):
    diffs = []
    for _, _, X, letters, best, worst, _ in sel:
        rep = {L: X[ix[0]] for L, ix in letters.items()}
        for L in rep:
            if L != best:
                diffs.append(rep[best] - rep[L])
            if L not in (worst, best):
                diffs.append(rep[L] - rep[worst])
    return torch.stack(diffs) if diffs else torch.zeros(0, len(names), dtype=torch.float64)


def fit(sel) -> torch.Tensor:
    D = pairs(sel)
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)  # readers' noise vs score units
    w = prior.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([w, scale], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        held = torch.where(free, w, prior)
        loss = torch.nn.functional.softplus(-(D @ held) * scale).sum() + lam * ((w - prior) ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return torch.where(free, w.detach(), prior)


def judge_items(sel, w):
    top = bottom = agree = total = 0
    chance = 0.0
    for _, _, X, letters, best, worst, _ in sel:
        scores = X @ w
        pick = int(torch.argmax(scores))  # first on ties, as best_index
        letter = next(L for L, ix in letters.items() if pick in ix)
        top += letter == best
        bottom += letter == worst
        chance += 1 / len(letters)
    D = pairs(sel)
    if len(D):
        agree = float(((D @ w) > 1e-9).double().mean())
    n = len(sel)
    return {"pools": n, "picked best": f"{top}/{n} ({top / n:.0%})", "picked worst": f"{bottom}/{n} ({bottom / n:.0%})",
            "chance": f"{chance / n:.0%}", "pairs agree": f"{agree:.0%}"}


for kind in ("story", "scene", None):
    sel = [it for it in items if kind is None or it[6] == kind]
    if not sel:
        continue
    print(kind or "all", "today's weights:", judge_items(sel, prior))
    worlds = sorted({it[1] for it in sel})
    held = []
    for world in worlds:  # leave one world out
        w = fit([it for it in items if it[1] != world])
        held.append((world, [it for it in sel if it[1] == world], w))
    top = bot = 0
    for _, held_items, w in held:
        for _, _, X, letters, best, worst, _ in held_items:
            pick = int(torch.argmax(X @ w))
            letter = next(L for L, ix in letters.items() if pick in ix)
            top += letter == best
            bot += letter == worst
    print(kind or "all", "fitted, world held out:", f"picked best {top}/{len(sel)} ({top / len(sel):.0%}),",
          f"picked worst {bot}/{len(sel)} ({bot / len(sel):.0%})")

agreement = [(vs[0], vs[1]) for vs in votes.values() if len(vs) > 1]
if agreement:
    same_best = sum(a[0] == b[0] for a, b in agreement)
    print(f"readers on the same pool: same BEST {same_best}/{len(agreement)}")
w = fit(items)
print("fitted on every pool (today -> fitted):")
for k in names:
    print(f"  {k:12s} { {**WEIGHTS, **EXTRA, **LINE_EXTRA}[k]:6.2f} -> {float(w[index[k]]):6.2f}")

from metagen.critic import NARRATION_WEIGHTS  # noqa: E402

shipped = torch.tensor([{**NARRATION_WEIGHTS, **EXTRA, **LINE_EXTRA}.get(k, 0.0) for k in names], dtype=torch.float64)
print("training pools, NARRATION_WEIGHTS as shipped:", judge_items(items, shipped))
if test:
    test_items, _ = read_items(Path(test[0]), test[1:])
    print("test pools, NARRATION_WEIGHTS as shipped:", judge_items(test_items, shipped))
    for kind in ("story", "scene", None):
        sel = [it for it in test_items if kind is None or it[6] == kind]
        if sel:
            print("test", kind or "all", "today's:", judge_items(sel, prior))
            print("test", kind or "all", "fitted:", judge_items(sel, w))
print("fitted weights as a dict:", {k: round(float(w[index[k]]), 2) for k in names})
