"""Repeated scenes among the files one `describe-scene ... -n 8` per place wrote: exact repeats and
shared first sentences, per place.

python repeats.py OUT   (OUT as given to -o: OUT/<world>/scene/<place>-<seed>.md)
"""
import glob, os, re, sys, collections
root = sys.argv[1]
def body(p):
    t = open(p).read(); return t.split("\n---\n", 1)[1].strip()
def first(t): return re.split(r"(?<=[.!?])\s", t, 1)[0].lower()
tot = ex = fs = 0
for d in sorted(glob.glob(f"{root}/*/scene")):
    groups = collections.defaultdict(list)
    for p in sorted(glob.glob(d + "/*.md")):
        groups[re.sub(r"-\d+\.md$", "", os.path.basename(p))].append(body(p))
    for place, texts in groups.items():
        n = len(texts); e = n - len(set(texts)); f = n - len({first(t) for t in texts})
        tot += n; ex += e; fs += f
        print(f"{os.path.basename(os.path.dirname(d))}/{place}: {n} scenes, {e} exact repeats, {f} repeated first sentences, words {sorted(len(t.split()) for t in texts)}")
print(f"all: {tot} scenes, {ex} exact repeats, {fs} repeated first sentences")
