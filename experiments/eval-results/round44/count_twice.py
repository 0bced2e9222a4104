import glob, sys, yaml
from metagen.grounding import named_twice
from metagen.world import load_world
worlds = {}
for label in sys.argv[1:]:
    stories = hits = 0; ex = []
    for f in sorted(glob.glob(f'/tmp/r4*/out/{label}/**/story/*.md', recursive=True)):
        front, body = open(f).read()[4:].split('\n---\n', 1)
        meta = yaml.safe_load(front)
        wf = meta['world_files'][0]
        for t in ('/work/wt-twice/', '/work/wt-kin2/', '/work/wt-kin/', '/work/wt-base/'):
            wf = wf.replace(t, '/work/main/')
        w = worlds.setdefault(wf, load_world(wf))
        found = [n for para in body.strip().split('\n\n') for n in named_twice(para, w.characters)]
        stories += 1; hits += bool(found)
        if found: ex.append((f.split('/')[-1], found))
    print(f"{label}: {stories} stories, {hits} with one of the cast named twice in a narrated sentence", ex)
