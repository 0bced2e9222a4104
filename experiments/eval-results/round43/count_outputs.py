"""Family words after a possessive whose owner is clear, in story files: fit or unfit for the owner (kinship.possessor)."""
import json, re, sys, yaml
from metagen.kinship import FAMILY_WORDS, possessor, read_rule, kin_guard_rules
from metagen.world import load_world

WORD = re.compile(r"\b([a-z]+)\b")
for jsonl in sys.argv[1:]:
    stories = unfit_stories = unfit_total = fit_total = 0
    for line in open(jsonl):
        rec = json.loads(line)
        raw = open(rec["path"], encoding="utf-8").read()
        front, text = raw.split("\n---\n", 1)
        meta = yaml.safe_load(front.lstrip("-\n"))
        world = load_world(meta["world_files"][0])
        owners = [read_rule(r) for r in kin_guard_rules(world)]
        stories += 1; hits = []
        for m in WORD.finditer(text):
            w = m.group(1).lower(); w1 = w if w in FAMILY_WORDS else w[:-1]
            if w1 not in FAMILY_WORDS: continue
            o = possessor(text[:m.start()], owners)
            if o is None: continue
            if w1 in o.unfit: hits.append(f"{o.forms[0]}: {text[max(0, m.start()-30):m.end()]!r}")
            else: fit_total += 1
        unfit_total += len(hits); unfit_stories += bool(hits)
        for h in hits: print("  ", rec["path"].split("/")[-1], h)
    print(jsonl, {"stories": stories, "with unfit": unfit_stories, "unfit": unfit_total, "fit": fit_total})
