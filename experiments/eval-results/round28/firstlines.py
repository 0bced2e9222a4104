import json,sys
a=json.load(open(sys.argv[1]))['outputs']; b=json.load(open(sys.argv[2]))['outputs']
for o in a:
    if o['kind']!='dialogue': continue
    m=[x for x in b if x['world']==o['world'] and x['kind']==o['kind'] and x['seed']==o['seed']][0]
    print(f"--- {o['world'][:12]} {o['seed']}")
    for t in (o,m):
        print('   ', ' | '.join(t['text'].split('\n')[:2])[:260])
