import sys, glob, os
def body(p):
    t = open(p).read()
    if t.startswith("---\n"):
        t = t.split("\n---\n", 1)[1]
    return t.strip()
a_root, b_roots = sys.argv[1], sys.argv[2:]
changed = same = 0
for root in b_roots:
    for f in sorted(glob.glob(f"{root}/*/story/*.md")):
        rel = f[len(root)+1:]
        a = os.path.join(a_root, rel)
        if body(a) != body(f):
            changed += 1; print("changed", rel)
        else:
            same += 1
print("changed", changed, "same", same)
