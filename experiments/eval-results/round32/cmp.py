import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
def key(o): return (o.get('world'), o.get('kind'), o.get('seed'), json.dumps(o.get('request'), sort_keys=True))
ao = {key(o): o for o in a['outputs']}; bo = {key(o): o for o in b['outputs']}
same = diff = 0
for k in ao:
    if k not in bo: continue
    if ao[k].get('text') == bo[k].get('text'): same += 1
    else:
        diff += 1; print('DIFF', k)
print('same', same, 'diff', diff, 'only-a', len(set(ao)-set(bo)), 'only-b', len(set(bo)-set(ao)))
for kind in ('story','scene','dialogue'):
    sa=[o.get('seconds') for o in a['outputs'] if o.get('kind')==kind and o.get('seconds')]; sb=[o.get('seconds') for o in b['outputs'] if o.get('kind')==kind and key(o) in ao and o.get('seconds')]
    if sa: print(kind, 'mean s', sum(sa)/len(sa), sum(sb)/max(1,len(sb)))
