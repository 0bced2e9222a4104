import glob, json, sys
from pathlib import Path
import yaml
sys.path.insert(0, 'corpus')
from build import _dump
new = {}
for f in sorted(glob.glob('/tmp/r24/scenes/outfirst*.json')):
    new.update(json.load(open(f)))
ids = json.load(open('/tmp/r24/scenes/first_ids.json'))
items = {i['id']: i for f in glob.glob('/tmp/r24/scenes/chunk*.json') for i in json.load(open(f))}
assert set(new) == set(ids), (len(new), len(ids))
assert all(new[k].startswith(items[k]['required_start']) for k in new)
for key, text in new.items():
    stem, i = key.split('#')
    path = Path('corpus/targets') / f'{stem}.yaml'
    data = yaml.safe_load(path.read_text())
    data['scenes'][int(i)]['text'] = ' '.join(text.split())
    path.write_text(_dump(data), encoding='utf-8')
print(len(new))
