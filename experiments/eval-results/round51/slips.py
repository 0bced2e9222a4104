"""Looser pronoun slips: a narrated sentence naming one world character X alone; a pronoun of the other
sex after X's name in it, or opening the next sentence (which names no one before it)."""
import glob, re, sys, yaml
from metagen.world import load_world
from metagen.kinship import kin_guard_rules, read_rule
from metagen.grounding import narrated_sentences, SHE_WORDS, HE_WORDS
from metagen.text import mentions, words_of
OTHER = {"she": HE_WORDS, "he": SHE_WORDS}
def slips(text, owners):
    found = []
    last = None  # the one owner the previous sentence named alone
    for s in narrated_sentences(text):
        named = [o for o in owners if any(mentions(s, f) for f in o.forms)]
        words = words_of(s)
        if last and last.pronoun in OTHER and words and words[0] in OTHER[last.pronoun] and not named[:0]:
            found.append((last.forms[-1], words[0], s[:80]))
        if len(named) == 1 and named[0].pronoun in OTHER:
            o = named[0]
            first = min(s.lower().find(f.lower()) for f in o.forms if mentions(s, f))
            after = words_of(s[first:])
            bad = [w for w in after if w in OTHER[o.pronoun]]
            if bad:
                found.append((o.forms[-1], bad[0], s[:80]))
        last = named[0] if len(named) == 1 else (None if named else last)
    return found
worlds = {}
n = hit = 0
for d in sys.argv[1].split(','):
    for f in sorted(glob.glob(f'{d}/**/story/*.md', recursive=True)):
        front, body = open(f).read()[4:].split('\n---\n', 1)
        meta = yaml.safe_load(front)
        wf = re.sub(r'^/work/wt-[^/]+/', '/work/main/', meta['world_files'][0])
        w = worlds.setdefault(wf, load_world(wf))
        owners = [read_rule(r) for r in kin_guard_rules(w)]
        n += 1
        s = slips(body, owners)
        if s:
            hit += 1
            print(f.split('/tmp/')[1], s[:3])
print(hit, "of", n)
