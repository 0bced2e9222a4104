"""Blind pairs of stories by file name: python pairs.py A_DIRS(comma, first match wins) B_DIR OUT SEED LABEL_A LABEL_B
pair-NNN.md (the request, Text 1, Text 2 in a drawn order), ratings.csv to fill, key.json to keep aside."""
import csv, glob, json, os, random, sys, yaml
a_dirs, b_dir, out, seed, label_a, label_b = sys.argv[1:7]
rng = random.Random(int(seed))
os.makedirs(out, exist_ok=True)
def parts(path):
    front, body = open(path, encoding="utf-8").read()[4:].split("\n---\n", 1)
    return yaml.safe_load(front), body.strip()
key, rows, n = {}, [], 0
for b in sorted(glob.glob(f"{b_dir}/*/story/*.md")):
    name = os.path.basename(b)
    a = next(f for d in a_dirs.split(",") for f in glob.glob(f"{d}/*/story/{name}"))
    meta, tb = parts(b)
    _, ta = parts(a)
    if ta == tb:
        continue
    n += 1
    first_is_a = rng.random() < 0.5
    one, two = (ta, tb) if first_is_a else (tb, ta)
    req = meta["request"]
    pair = f"pair-{n:03d}"
    asked = f"a story with {', '.join(req['characters'])} at {req['location']} (ids from the world file)"
    with open(os.path.join(out, pair + ".md"), "w", encoding="utf-8") as f:
        f.write(f"# {pair}\n\n- kind: story\n- world file: {meta['world_id']}.yaml\n- asked: {asked}\n\n"
                f"## Text 1\n\n{one}\n\n## Text 2\n\n{two}\n")
    key[pair] = {"1": label_a if first_is_a else label_b, "2": label_b if first_is_a else label_a, "a": a, "b": b}
    rows.append({"run": seed, "pair": pair, "preferred": "", "note": ""})
json.dump(key, open(os.path.join(out, "key.json"), "w"), indent=1)
with open(os.path.join(out, "ratings.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "pair", "preferred", "note"]); w.writeheader(); w.writerows(rows)
print(n, "pairs")
