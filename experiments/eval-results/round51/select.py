"""Stories whose kept beats' critic findings include 'pronoun' (a superset of the redraw's trigger)."""
import glob, sys, yaml
for d in sys.argv[1:]:
    for f in sorted(glob.glob(f'{d}/**/story/*.md', recursive=True)):
        front = open(f).read()[4:].split('\n---\n', 1)[0]
        meta = yaml.safe_load(front)
        beats = (meta.get('critic') or {}).get('beats', [])
        if any('pronoun' in b['candidates'][b['chosen']] for b in beats):
            print(f)
