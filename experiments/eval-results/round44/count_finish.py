import glob, sys, yaml
from metagen.plan import Beat, finishing_words
from metagen.text import split_sentences, words_of
import re
for label in sys.argv[1:]:
    n = closes = 0
    for f in sorted(glob.glob(f'/tmp/r44/out/{label}/**/story/*.md', recursive=True)):
        front, body = open(f).read()[4:].split('\n---\n', 1)
        plan = yaml.safe_load(front).get('plan') or []
        end = [b for b in plan if b['beat'] == 'ending']
        image = finishing_words(Beat('ending', end[0]['instruction'])) if end else frozenset()
        if not image:
            continue
        last = body.strip().split('\n\n')[-1]
        close = {re.sub(r"['’]s$", "", w) for w in words_of(" ".join(split_sentences(last)[-2:]))}
        n += 1; closes += len(close & image) / len(image) >= 0.5
    print(f"{label}: {n} stories with a finishing image; the last two sentences say half its words or more in {closes}")
