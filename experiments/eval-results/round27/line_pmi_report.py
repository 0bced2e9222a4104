"""How often each measure of a line candidate picks the readers' BEST and WORST line.

usage: python line_pmi_report.py SHEETS_DIR PMI.jsonl POOLS.jsonl... [--test SHEETS_DIR PMI.jsonl POOLS.jsonl...]
Measures: the critic's stored score; PMI with the last line (full - nolast) and with the transcript
(full - none), as sums and per token; and critic score + w x PMI for a few w (w chosen on the first
set is then applied to the --test set). Only pools with a transcript (a line that answers something).
"""
import json
import re
import sys
from collections import defaultdict
from pathlib import Path


def read_votes(sheets: Path) -> dict:
    votes = defaultdict(list)
    for sheet in sorted(sheets.glob("sheet-*.md")):
        for block in re.split(r"(?m)^## Pool ", sheet.read_text(encoding="utf-8"))[1:]:
            pid = block.split()[0]
            best = re.search(r"(?m)^BEST:\s*([A-Z])", block)
            worst = re.search(r"(?m)^WORST:\s*([A-Z])", block)
            if best and worst and best.group(1) != worst.group(1):
                votes[pid].append((best.group(1), worst.group(1)))
    return votes


def line_features(pool, s, i):
    """One line candidate's measures, or None for a pool with nothing said before (no gain to measure)."""
    if not pool["transcript"]:
        return None
    t = max(1, s["tokens"][i])
    return {"critic": pool["candidates"][i]["score"],
            "pmi_last": s["full"][i] - s["nolast"][i],
            "pmi_last_tok": (s["full"][i] - s["nolast"][i]) / t,
            "pmi_all": s["full"][i] - s["none"][i],
            "pmi_all_tok": (s["full"][i] - s["none"][i]) / t,
            "lp_tok": s["full"][i] / t, "tokens": t}


def load(sheets, pmi_path, pool_paths, features=line_features):
    """(features per letter, best letter, worst letter) for every reading of a pool;
    features(pool, scores, candidate index) gives one candidate's measures (None: skip the pool)."""
    sheets = Path(sheets)
    key = json.load(open(sheets / "key.json"))
    votes = read_votes(sheets)
    pools = [json.loads(line) for p in pool_paths for line in open(p, encoding="utf-8")]
    pmi = [json.loads(line) for line in open(pmi_path)]
    items = []
    for pid, vs in votes.items():
        n = key[pid]["pool"]
        feats = {letter: features(pools[n], pmi[n], idx[0]) for letter, idx in key[pid]["letters"].items()}
        if any(f is None for f in feats.values()):
            continue
        items += [(feats, best, worst) for best, worst in vs]
    return items


def rates(items, f):
    hit_best = hit_worst = agree = pairs = 0
    chance = 0.0
    for feats, best, worst in items:
        val = {k: f(v) for k, v in feats.items()}
        pick = max(val, key=val.get)
        hit_best += pick == best
        hit_worst += pick == worst
        chance += 1 / len(val)
        for other in val:
            for hi, lo in ((best, other), (other, worst)):
                if hi != lo:
                    pairs += 1
                    agree += (val[hi] > val[lo]) + 0.5 * (val[hi] == val[lo])
    return hit_best, hit_worst, agree / max(1, pairs), chance


def show(name, items, f):
    b, w, a, c = rates(items, f)
    print(f"  {name:28s} BEST {b:3d}/{len(items)}  WORST {w:3d}  pairs {a:.1%}  (chance {c:.1f})")


if __name__ == "__main__":
    args = sys.argv[1:]
    test = None
    if "--test" in args:
        i = args.index("--test")
        test, args = args[i + 1:], args[:i]
    train = load(args[0], args[1], args[2:])
    measures = ["critic", "pmi_last", "pmi_last_tok", "pmi_all", "pmi_all_tok", "lp_tok", "tokens"]
    print(f"train: {len(train)} readings")
    for m in measures:
        show(m, train, lambda v, m=m: v[m])
    best_w = {}
    for m in ("pmi_last", "pmi_all", "pmi_last_tok", "pmi_all_tok"):
        for w in (0.3, 1.0, 2.0, 3.0, 5.0):
            show(f"critic + {w} {m}", train, lambda v, m=m, w=w: v["critic"] + w * v[m])
    if test:
        items = load(test[0], test[1], test[2:])
        print(f"test: {len(items)} readings")
        for m in measures:
            show(m, items, lambda v, m=m: v[m])
        for m in ("pmi_last", "pmi_all", "pmi_last_tok", "pmi_all_tok"):
            for w in (0.3, 1.0, 2.0, 3.0, 5.0):
                show(f"critic + {w} {m}", items, lambda v, m=m, w=w: v["critic"] + w * v[m])
