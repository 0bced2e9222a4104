# slips.py DIR...: narration sentences in the other tense than the world's, per story
import sys, glob, re, yaml
sys.path.insert(0, "/work/main")
from metagen.grounding import narration_tense
TENSE = {}
def world_tense(name):
    return {"ashenmere":"past","nexus-hub":"present","saltgate":"past"}.get(name) or yaml.safe_load(open(f"/work/main/corpus/worlds/{name}.yaml"))["style"].get("tense","past")
tot=stories=slipst=0
for d in sys.argv[1:]:
  for p in sorted(glob.glob(d+"/*/story/*.md")):
    w=p.split("/")[-3]; t=world_tense(w)
    b=open(p).read().split("\n---\n",1)[1]
    sents=[s for s in re.split(r'(?<=[.!?])\s+', b) if s.strip()]
    slips=[s for s in sents if narration_tense(s) not in ("", t)]
    stories+=1; tot+=len(slips); slipst+=bool(slips)
    if "-v" in sys.argv[0:1]: pass
print(f"{stories} stories; with a slipped sentence {slipst}; slipped sentences {tot}")
