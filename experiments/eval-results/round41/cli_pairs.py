"""Blind pairs from two runs of the same commands (JSON lines that `metagen ... --json` printed):
pair-NNN.md with the two texts in a drawn order, ratings.csv to fill, key.json to keep aside.

python cli_pairs.py A.jsonl B.jsonl OUTDIR SEED "label A" "label B" "what was asked"
"""
import csv
import json
import os
import random
import sys

a_lines, b_lines, out, seed, label_a, label_b, asked = sys.argv[1:8]
rng = random.Random(int(seed))
a = [json.loads(line) for line in open(a_lines)]
b = [json.loads(line) for line in open(b_lines)]
os.makedirs(out, exist_ok=True)


def text(path):
    return open(path, encoding="utf-8").read().split("\n---\n", 1)[1].strip()


def world_name(path):
    for line in open(path, encoding="utf-8"):
        if line.startswith("world_name:") or line.startswith("world:"):
            pass
    return None


key, rows = {}, []
for n, (x, y) in enumerate(zip(a, b), 1):
    assert (x["world"], x["seed"]) == (y["world"], y["seed"]), (x, y)
    ta, tb = text(x["path"]), text(y["path"])
    if ta == tb:
        continue
    first_is_a = rng.random() < 0.5
    one, two = (ta, tb) if first_is_a else (tb, ta)
    name = f"pair-{n:03d}"
    with open(os.path.join(out, name + ".md"), "w", encoding="utf-8") as f:
        f.write(f"# {name}\n\n- kind: {x['kind']}\n- world file: {x['world']}.yaml\n- asked: {asked}\n\n"
                f"## Text 1\n\n{one}\n\n## Text 2\n\n{two}\n")
    key[name] = {"1": label_a if first_is_a else label_b, "2": label_b if first_is_a else label_a,
                 "a": x["path"], "b": y["path"]}
    rows.append({"run": seed, "pair": name, "preferred": "", "note": ""})
json.dump(key, open(os.path.join(out, "key.json"), "w"), indent=1)
with open(os.path.join(out, "ratings.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "pair", "preferred", "note"])
    w.writeheader()
    w.writerows(rows)
print(len(rows), "pairs")
