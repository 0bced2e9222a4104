"""Do readers pass over dialogue line candidates that echo a sample line of the world (short of a copy)?

usage: PYTHONPATH=. python sample_echo.py SHEETS_DIR POOLS.jsonl... (round 26's line sheets and pools)
For every candidate: the longest run of words it shares with any sample line in its brief, and the
share of some sample line's content words it repeats. Prints, per level, how often such candidates
were the readers' BEST and WORST against their share of the candidates read.
"""
import json
import re
import sys
from collections import Counter
from pathlib import Path

from metagen.text import words_of

sys.path.insert(0, str(Path(__file__).parent))
from line_pmi_report import read_votes  # noqa: E402

STOP = set("a an the and or but of in on at to by with from for into is are was were be been it its i you we he she they my your our "
           "me him her them this that there here not no do does did have has had will would can could just so what".split())


def samples(pool) -> list[list[str]]:
    brief = pool["messages"][-1]["content"]
    block = brief.split("Examples of their lines:\n", 1)[1].split("\n\n", 1)[0] if "Examples of their lines:" in brief else ""
    return [words_of(line.split(":", 1)[1]) for line in block.splitlines() if ":" in line]


def run(a, b):
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            n = 0
            while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n]:
                n += 1
            best = max(best, n)
    return best


def echo(text, lines):
    words = words_of(text)
    content = {w for w in words if w not in STOP}
    longest = max((run(words, s) for s in lines), default=0)
    share = max((len(content & {w for w in s if w not in STOP}) / max(1, len({w for w in s if w not in STOP}))
                 for s in lines), default=0.0)
    return longest, share


sheets = Path(sys.argv[1])
key = json.load(open(sheets / "key.json"))
pools = [json.loads(line) for p in sys.argv[2:] for line in open(p, encoding="utf-8")]
seen, best, worst = Counter(), Counter(), Counter()
for pid, votes in read_votes(sheets).items():
    n = key[pid]["pool"]
    lines = samples(pools[n])
    for b, w in votes:
        for letter, idx in key[pid]["letters"].items():
            longest, share = echo(pools[n]["candidates"][idx[0]]["text"], lines)
            level = ("run>=4" if longest >= 4 else "run3" if longest == 3 else "run<3") + (" share>=.5" if share >= 0.5 else "")
            seen[level] += 1
            best[level] += letter == b
            worst[level] += letter == w
for level in sorted(seen):
    print(f"{level:18s} candidates {seen[level]:4d}  BEST {best[level]:3d} ({best[level] / seen[level]:.0%})  WORST {worst[level]:3d} ({worst[level] / seen[level]:.0%})")
