import csv, json, sys, math
keyf, new_label = sys.argv[1], sys.argv[2]
dirs = sys.argv[3:]
key = json.load(open(keyf))
res = {}
for r in dirs:
    for row in csv.DictReader(open(f'{r}/ratings.csv')):
        p = row['preferred'].strip()
        res.setdefault(row['pair'], []).append(key[row['pair']][p] if p in ('1','2') else '=')
tot = [x for v in res.values() for x in v]
k = tot.count(new_label); n = len([x for x in tot if x != '='])
agree = sum(len(set(v)) == 1 for v in res.values())
both_new = sum(v.count(new_label) == len(v) for v in res.values()); both_old = sum(new_label not in v for v in res.values())
def wilson(k, n, z=1.96):
    p = k/n; d = 1+z*z/n; c = p + z*z/(2*n); m = z*math.sqrt(p*(1-p)/n + z*z/(4*n*n)); return (c-m)/d, (c+m)/d
lo, hi = wilson(k, n)
print(f"{new_label}: {k} of {n} readings ({k/n:.0%}, Wilson {lo:.0%}-{hi:.0%}); pairs agreed {agree} of {len(res)}; both for new {both_new}, both for old {both_old}")
keeps = [row['note'].strip()[-12:] for r in dirs for row in csv.DictReader(open(f'{r}/ratings.csv'))]
print('keep notes:', {x: sum(1 for y in keeps if y.endswith(x)) for x in ('keep1','keep2','keep both','keep none')})
