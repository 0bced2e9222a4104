# pslips.py DIR...: sentences that open on one of the cast, name no one else, and use a pronoun that character does not take
import sys, glob, re, yaml
sys.path.insert(0, "/work/main")
from metagen.world import load_world
from metagen.kinship import kin_guard_rules, read_rule
from metagen.text import fold, mentions
from metagen.grounding import QUOTED
W = {"ashenmere": "/work/main/worlds/ashenmere.yaml", "nexus-hub": "/work/main/worlds/nexus-hub.yaml", "saltgate": "/work/main/worlds/harbour/world.yaml"}
PW = {"she": {"she", "her", "hers", "herself"}, "he": {"he", "him", "his", "himself"}}
owners = {}
stories = hit = n = 0
for d in sys.argv[1:]:
    for p in sorted(glob.glob(d + "/*/story/*.md")):
        w = p.split("/")[-3]
        if w not in owners:
            owners[w] = [read_rule(r) for r in kin_guard_rules(load_world(W.get(w, f"/work/main/corpus/worlds/{w}.yaml")))]
        body = open(p).read().split("\n---\n", 1)[1]
        narration = QUOTED.sub(" ", body)
        found = 0
        for s in re.split(r"(?<=[.!?])\s+|\n", narration):
            s = s.strip(" \"“”'")
            f = fold(s)
            named = [o for o in owners[w] if any(mentions(f, fold(x)) for x in o.forms)]
            if len(named) != 1 or not named[0].pronoun:
                continue
            o = named[0]
            if not any(f.startswith(fold(x)) and not f[len(fold(x)):len(fold(x)) + 1].isalnum() for x in o.forms):
                continue
            wrong = set().union(*(v for k, v in PW.items() if k != o.pronoun))
            words = re.findall(r"[a-z]+", f)
            if any(x in wrong for x in words):
                found += 1
                if "-v" in sys.argv: print(w, "|", s[:150])
        stories += 1; hit += bool(found); n += found
print(f"{stories} stories; with a slip the guard reads {hit}; sentences {n}")
