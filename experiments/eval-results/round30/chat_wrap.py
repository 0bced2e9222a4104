import sys, json, metagen.generator as g
orig = g.Generator.complete
stats = {"calls": 0, "rows": 0, "empty": 0, "first_nl": 0}
def wrapped(self, prompts, cfg, *a, **k):
    out = orig(self, prompts, cfg, *a, **k)
    stats["calls"] += 1; stats["rows"] += len(out)
    stats["empty"] += sum(1 for o in out if not o.text.strip())
    stats["first_nl"] += sum(1 for o in out if o.tokens[:1] == [198])
    return out
g.Generator.complete = wrapped
import atexit; atexit.register(lambda: print("STATS", json.dumps(stats), file=sys.stderr))
from metagen.cli import main
sys.argv = ["metagen", *sys.argv[1:]]
main()
