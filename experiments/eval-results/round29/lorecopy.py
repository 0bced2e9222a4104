"""Dialogue lines sharing 5+ words in a row with the world's lore or place/character descriptions (recited facts), per report."""
import glob, json, re, sys
sys.path.insert(0, '.')
from metagen.world import load_world
from metagen.text import words_of
paths = {'nexus-hub': 'worlds/nexus-hub.yaml', 'ashenmere': 'worlds/ashenmere.yaml', 'saltgate': 'worlds/harbour/world.yaml'}
for p in glob.glob('corpus/worlds/h*.yaml'): paths[p.split('/')[-1][:-5]] = p
N = 5
cache = {}
def grams(world_id):
    if world_id not in cache:
        w = load_world(paths[world_id])
        texts = [e.text for e in w.lore] + [w.summary or ""] + [c.description or "" for c in w.characters]
        cache[world_id] = {tuple(ws[i:i + N]) for t in texts for ws in [words_of(t)] for i in range(len(ws) - N + 1)}
    return cache[world_id]
for rep in sys.argv[1:]:
    n = hit = 0
    for o in json.load(open(rep))['outputs']:
        g = grams(o['world'])
        for line in o['text'].splitlines():
            m = re.match(r'^([^:]+):\s*(.*)', line)
            if not m: continue
            ws = words_of(m.group(2)); n += 1
            hit += any(tuple(ws[i:i + N]) in g for i in range(len(ws) - N + 1))
    print(rep.split('/')[-2], f"lines reciting 5+ words of lore/descriptions: {hit}/{n}")
