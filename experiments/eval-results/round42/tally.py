"""Tally a cli_pairs.py blind folder's filled sheet: preferred and kept per side, and per world file.

python tally.py BLIND_DIR [BLIND_DIR ...]   (the folders' sheets pooled)
"""
import collections
import csv
import json
import math
import os
import re
import sys


def wilson(k, n, z=1.96):
    p, d = k / n, 1 + z * z / n
    centre, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return centre - half, centre + half


preferred, kept, by_world = collections.Counter(), collections.Counter(), collections.Counter()
for folder in sys.argv[1:]:
    key = json.load(open(os.path.join(folder, "key.json")))
    for row in csv.DictReader(open(os.path.join(folder, "ratings.csv"))):
        sides, choice = key[row["pair"]], row["preferred"].strip()
        winner = sides[choice] if choice in ("1", "2") else "="
        preferred[winner] += 1
        world = re.search(r"world file: (\S+)", open(os.path.join(folder, row["pair"] + ".md")).read()).group(1)
        by_world[world, winner] += 1
        keep = re.search(r"keep ?(1|2|both|none)\W*$", row["note"].strip())
        for side in {"1": ["1"], "2": ["2"], "both": ["1", "2"]}.get(keep.group(1) if keep else "none", []):
            kept[sides[side]] += 1
decided = sum(v for k, v in preferred.items() if k != "=")
print("preferred:", dict(preferred), " kept:", dict(kept))
for side, n in preferred.items():
    if side != "=":
        low, high = wilson(n, decided)
        print(f"  {side}: {n} of {decided} ({100 * n / decided:.0f}%, Wilson {100 * low:.0f}-{100 * high:.0f}%)")
for (world, side), n in sorted(by_world.items()):
    print(f"  {world} {side}: {n}")
