import json,sys
keys=['grounding_model','invented_outputs','invented_lines','invented_relatives','copied','repetition','distinct_2','words','seconds_per_piece']
print('| run | '+' | '.join(keys)+' |')
for path in sys.argv[1:]:
    s=json.load(open(path))['summary']['dialogue']['metagen']
    print('| '+path.split('/')[-2]+' | '+' | '.join(f"{s[k]:.3f}" if isinstance(s[k],float) else str(s[k]) for k in keys)+' |')
