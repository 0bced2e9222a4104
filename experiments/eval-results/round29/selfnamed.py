"""Lines in which the speaker says their own name (outside "I'm X"/"I am X"), per report."""
import json, re, sys
for rep in sys.argv[1:]:
    n = hit = 0
    for o in json.load(open(rep))['outputs']:
        for line in o['text'].splitlines():
            m = re.match(r'^([^:]+):\s*(.*)', line)
            if not m: continue
            n += 1
            names = [w for w in m.group(1).split() if w[0].isupper() and w not in ("Queen", "Sister", "Grandfather")][:1]
            said = re.sub(r"\b(?:I'm|I am|my name is)\s+\w+(?:\s+\w+)?", "", m.group(2), flags=re.I)
            if any(re.search(r'\b' + re.escape(w) + r'\b', said) for w in names):
                hit += 1
    print(rep.split('/')[-2], f"{hit}/{n}")
