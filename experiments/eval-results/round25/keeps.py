"""keeps.py BLIND_DIR...: how many texts of each side readers would keep as a draft (notes end keep1/keep2/keep both)."""
import csv
import json
import sys
from collections import Counter
from pathlib import Path

kept = Counter()
for folder in map(Path, sys.argv[1:]):
    key = json.load(open(folder / "key.json"))
    pairs = key["pairs"] if isinstance(key, dict) and "pairs" in key else key
    by_pair = {p["pair"] if "pair" in p else p["id"]: p for p in pairs} if isinstance(pairs, list) else pairs
    for row in csv.DictReader(open(folder / "ratings.csv", newline="")):
        note = row["note"].strip().rstrip(".").lower()
        entry = by_pair[row["pair"]]
        a_is = entry["a"]  # which text (1 or 2) is side A
        kind = entry.get("kind", "?")
        texts = [1, 2] if note.endswith("keep both") else [1] if note.endswith("keep1") else [2] if note.endswith("keep2") else []
        for t in texts:
            kept[("A" if int(t) == int(a_is) else "B", kind)] += 1
print(dict(sorted(kept.items())))
