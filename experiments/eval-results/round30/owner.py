"""Prototype: a dialogue line that says the listener's card facts of the speaker ("I ...") or the speaker's of the listener ("you ...")."""
import json, re, sys
from metagen.world import load_world
from metagen.grounding import common_words
from metagen.text import words_of
from metagen.critic import _STOP_WORDS

WORLDS = {}
def world(name):
    for path in ["corpus/worlds/h2-copperleaf-terraces.yaml","corpus/worlds/h4-quillon-halt.yaml","corpus/worlds/h5-linden-apiary.yaml","corpus/worlds/h6-solenne-kite-market.yaml","worlds/nexus-hub.yaml","worlds/ashenmere.yaml","worlds/harbour/world.yaml"]:
        if path not in WORLDS: WORLDS[path]=load_world(path)
        if WORLDS[path].name==name: return WORLDS[path]
def stem(w): 
    for suf in ("ing","ed","es","s"):
        if len(w)>len(suf)+3 and w.endswith(suf): return w[:-len(suf)]
    return w
def card(c):
    text=" ".join([c.role or "", c.description or "", *c.goals, *c.secrets])
    return {stem(w) for w in words_of(text) if len(w)>=4 and w not in _STOP_WORDS and w not in common_words()}
NAMEWORDS=set()
def card_loose(c):
    text=" ".join([c.description or "", *c.goals, *c.secrets])
    caps={stem(w.lower()) for w in re.findall(r"\b[A-Z][\w']+", text)}
    return {stem(w) for w in words_of(text) if len(w)>=4 and w not in _STOP_WORDS} - caps - {stem(w) for w in words_of(c.name+" "+" ".join(c.aliases)+" "+(c.role or ""))}
FIRST=re.compile(r"\b(?:I|I'm|I've|I'll|I'd|my|me|myself)\b")
SECOND=re.compile(r"\b(?:you|your|you're|you've|you'll|yourself)\b", re.I)
def sentences(l): return [s for s in re.split(r"(?<=[.!?])\s+", l) if s.strip()]
def owner_slips(line, sp, li, loose=False):
    f=card_loose if loose else card
    S, L = f(sp)-f(li), f(li)-f(sp)
    out=[]
    for s in sentences(line):
        ws={stem(w) for w in words_of(s)}
        first=bool(FIRST.search(s)); second=bool(SECOND.search(s))
        if first and not second and ws & L: out.append(("I+L", sorted(ws&L), s))
        if second and not first and ws & S: out.append(("you+S", sorted(ws&S), s))
    return out
def dialogues(rows):
    out=[]
    for r in rows:
        if r['turn']==1: out.append([])
        out[-1].append(r)
    return out
if __name__=="__main__":
    loose = "--loose" in sys.argv
    show = "--show" in sys.argv
    for f in [a for a in sys.argv[1:] if not a.startswith("--")]:
        rows=[json.loads(l) for l in open(f)]
        chosen=cands=avoid=0
        for d in dialogues(rows):
            w=world(d[0]['world']); cast={c.name:c for c in w.characters}
            names=list(dict.fromkeys(r['speaker'] for r in d))
            for r in d:
                sp=cast[r['speaker']]; lis=[cast[n] for n in names if n!=r['speaker']]
                if not lis: continue
                li=lis[0]
                fl=[owner_slips(t.strip(), sp, li, loose) for t in r['raw']]
                cands+=sum(bool(x) for x in fl)
                if fl[r['chosen']]:
                    chosen+=1
                    if any(not x and t.strip() for x,t in zip(fl,r['raw'])): avoid+=1
                if show:
                    for x in fl:
                        for k,wds,sent in x: print(f"   [{r['speaker'].split()[0]}->{li.name.split()[0]}] {k} {wds}: {sent}")
        print(f, "lines",len(rows),"chosen flagged",chosen,"avoidable",avoid,"cands flagged",cands,"of",sum(len(r['raw']) for r in rows))
