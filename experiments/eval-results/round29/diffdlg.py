"""Changed dialogues between two eval reports, and lines opening on the first two words of their speaker's sample line."""
import json, re, sys, glob
sys.path.insert(0, '.')
from metagen.world import load_world
from metagen.text import words_of
paths = {'nexus-hub': 'worlds/nexus-hub.yaml', 'ashenmere': 'worlds/ashenmere.yaml', 'saltgate': 'worlds/harbour/world.yaml'}
for p in glob.glob('corpus/worlds/h*.yaml'): paths[p.split('/')[-1][:-5]] = p
worlds = {}
def openings(report):
    n = hit = 0
    for o in json.load(open(report))['outputs']:
        w = worlds.get(o['world']) or load_world(paths[o['world']]); worlds[o['world']] = w
        by = {c.name: c for c in w.characters}
        for line in o['text'].splitlines():
            m = re.match(r'^([^:]+):\s*(.*)', line)
            if not m or m.group(1) not in by: continue
            n += 1; hit += tuple(words_of(m.group(2))[:2]) in {tuple(words_of(s)[:2]) for s in by[m.group(1)].sample_lines}
    return hit, n
a, b = sys.argv[1], sys.argv[2]
ka = {(o['world'], o['seed']): o['text'] for o in json.load(open(a))['outputs']}
changed = 0
for o in json.load(open(b))['outputs']:
    k = (o['world'], o['seed'])
    if ka[k] != o['text']:
        changed += 1
        if '-v' in sys.argv: print('==', k); print(ka[k]); print('--'); print(o['text'])
print('changed', changed, '| sample-line openings A %d/%d, B %d/%d' % (*openings(a), *openings(b)))
