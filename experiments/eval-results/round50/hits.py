# hits.py DIR...: stories whose body writes a word absent_things bans for their world (as HEAD would see it)
import sys, re, glob
sys.path.insert(0, "/work/main")
from metagen.world import load_world
from metagen.grounding import absent_things
worlds = {}
for d in sys.argv[1:]:
    n = hit = 0
    for f in sorted(glob.glob(f"{d}/**/story/*.md", recursive=True)):
        txt = open(f, encoding="utf-8").read()
        wf = re.sub(r"^/work/wt-[^/]+/", "/work/main/", re.search(r"world_files:\n- (.*)\n", txt).group(1).strip())
        if wf not in worlds: worlds[wf] = set(absent_things(load_world(wf)))
        body = txt.split("\n---\n", 1)[1]
        words = [w for w in re.findall(r"[a-z]+", body.lower()) if w in worlds[wf]]
        n += 1; hit += bool(words)
        if words and "-v" in sys.argv[0:1] + sys.argv: print(" ", f.split("/")[-1], words)
    print(d, n, "stories,", hit, "with a banned thing")
