"""Kept as a draft, per side (a, b), from `metagen eval --blind` folders' filled sheets: the note's last
words, keep1, keep2, keep both or keep none; key.json's "a" is which text (1 or 2) is side a.

python kept.py BLIND_DIR [BLIND_DIR ...]
"""
import collections
import csv
import json
import os
import re
import sys

kept = collections.Counter()
for folder in sys.argv[1:]:
    side_a = {p["pair"]: str(p["a"]) for p in json.load(open(os.path.join(folder, "key.json")))["pairs"]}
    for row in csv.DictReader(open(os.path.join(folder, "ratings.csv"))):
        keep = re.search(r"keep ?(1|2|both|none)\W*$", row["note"].strip())
        for text in {"1": ["1"], "2": ["2"], "both": ["1", "2"]}.get(keep.group(1) if keep else "none", []):
            kept["a" if text == side_a[row["pair"]] else "b"] += 1
print(dict(kept))
