"""order.py A.jsonl OUT.jsonl B1.jsonl [B2 ...]: B's lines in A's order, by (world, seed); A's lines B lacks are left out of both (A written to OUT-a.jsonl)."""
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = {}
for f in sys.argv[3:]:
    for l in open(f):
        x = json.loads(l); b[(x["world"], x["seed"])] = x
out = sys.argv[2]
with open(out, "w") as fb, open(out.replace(".jsonl", "-a.jsonl"), "w") as fa:
    for x in a:
        k = (x["world"], x["seed"])
        if k in b:
            fa.write(json.dumps(x) + "\n"); fb.write(json.dumps(b[k]) + "\n")
