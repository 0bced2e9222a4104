"""How often each measure of a narration candidate picks the readers' BEST and WORST (round 26's sheets).

usage: PYTHONPATH=. python pool_pmi_report.py SHEETS_DIR PMI.jsonl POOLS.jsonl... [--test SHEETS_DIR PMI.jsonl POOLS.jsonl...]
Measures: the critic's score under 0.15.0's NARRATION_WEIGHTS (from each candidate's recorded findings);
the gain in mean token log-probability from the whole prompt over a bare one (bare) and over the last
instruction alone (last); and the critic plus w x each gain.
"""
import json
import sys
from pathlib import Path

from metagen.critic import NARRATION_WEIGHTS

sys.path.insert(0, str(Path(__file__).parent))
from line_pmi_report import load, show  # noqa: E402


def narration_features(pool, s, i):
    t = max(1, s["tokens"][i])
    findings = pool["candidates"][i]["findings"]
    return {"critic": sum(NARRATION_WEIGHTS.get(k, 0.0) * v for k, v in findings.items()),
            "bare": (s["full"][i] - s["bare"][i]) / t, "last": (s["full"][i] - s["last"][i]) / t,
            "lp": s["full"][i] / t}


args = sys.argv[1:]
test = None
if "--test" in args:
    i = args.index("--test")
    test, args = args[i + 1:], args[:i]
for name, spec in (("train", args), ("test", test)):
    if not spec:
        continue
    items = load(spec[0], spec[1], spec[2:], narration_features)
    print(f"{name}: {len(items)} readings")
    for m in ("critic", "bare", "last", "lp"):
        show(m, items, lambda v, m=m: v[m])
    for m in ("bare", "last"):
        for w in (0.5, 1.0, 2.0, 3.0, 5.0):
            show(f"critic + {w} {m}", items, lambda v, m=m, w=w: v["critic"] + w * v[m])
