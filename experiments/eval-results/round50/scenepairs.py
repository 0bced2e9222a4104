import json, random, os, csv, shutil, sys
A = json.load(open("/tmp/r50/scenes-head/report.json"))["outputs"]; B = json.load(open("/tmp/r50/scenes-sea/report.json"))["outputs"]
rng = random.Random(5003); out = "/tmp/r50/blind-scene"; os.makedirs(out, exist_ok=True)
key, rows = {}, []
for n, (a, b) in enumerate(zip(A, B), 1):
    if a["text"] == b["text"]: continue
    first_a = rng.random() < 0.5
    one, two = (a["text"], b["text"]) if first_a else (b["text"], a["text"])
    name = f"pair-{n:03d}"
    with open(f"{out}/{name}.md", "w") as f:
        f.write(f"# {name}\n\n- kind: scene\n- world file: {a['world']}.yaml\n- asked: a scene of the place '{a['request']['location']}' (its id in the world file)\n\n## Text 1\n\n{one}\n\n## Text 2\n\n{two}\n")
    key[name] = {"1": "shipped" if first_a else "absent things banned", "2": "absent things banned" if first_a else "shipped"}
    rows.append({"run": 5003, "pair": name, "preferred": "", "note": ""})
os.makedirs("/tmp/r50/key-blind-scene", exist_ok=True)
json.dump(key, open("/tmp/r50/key-blind-scene/key.json", "w"), indent=1)
with open(f"{out}/ratings.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=["run", "pair", "preferred", "note"]); w.writeheader(); w.writerows(rows)
for p in ["worlds/ashenmere.yaml", "corpus/worlds/h2-copperleaf-terraces.yaml", "corpus/worlds/h5-linden-apiary.yaml", "corpus/worlds/h6-solenne-kite-market.yaml"]:
    shutil.copy("/work/main/" + p, out)
print(len(rows))
