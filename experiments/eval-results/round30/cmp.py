import json,sys
def load(f): return [json.loads(l) for l in open(f)]
for f in sys.argv[1:]:
    rows=load(f)
    empty=sum(1 for r in rows for t in r['raw'] if not t.strip())
    print(f, "lines",len(rows),"cands",sum(len(r['raw']) for r in rows),"empty",empty, "chosen empty", sum(1 for r in rows if not r['raw'][r['chosen']].strip()))
