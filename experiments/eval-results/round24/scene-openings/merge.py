"""Put the rewritten scene texts (out*.json) into corpus/targets/*.yaml."""
import glob, json, sys
from pathlib import Path
import yaml
sys.path.insert(0, 'corpus')
from build import _dump

new = {}
for f in sorted(glob.glob('/tmp/r24/scenes/out*.json')):
    new.update(json.load(open(f)))
items = {i['id']: i for f in glob.glob('/tmp/r24/scenes/chunk*.json') for i in json.load(open(f))}
bad = [k for k, t in new.items() if not t.startswith(items[k]['required_start'])]
print(len(new), 'texts;', len(bad), 'not starting right', bad[:5])
by_file = {}
for key, text in new.items():
    stem, i = key.split('#')
    by_file.setdefault(stem, {})[int(i)] = ' '.join(text.split())
for stem, texts in by_file.items():
    path = Path('corpus/targets') / f'{stem}.yaml'
    data = yaml.safe_load(path.read_text())
    for i, text in texts.items():
        data['scenes'][i]['text'] = text
    path.write_text(_dump(data), encoding='utf-8')
print(len(by_file), 'files')
