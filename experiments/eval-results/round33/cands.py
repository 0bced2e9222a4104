import sys
import metagen
from metagen import plan as P
orig = P._draw_candidates
def patched(*a, **k):
    seeds, options, verdicts, cuts = orig(*a, **k)
    print("=" * 30, "beat", file=sys.stderr)
    for o, v in zip(options, verdicts):
        print(f"--- score {v.score:.2f} {dict((x, y) for x, y in v.findings.items() if y and x not in ('garbled','banned'))}", file=sys.stderr)
        print(o.text.strip(), file=sys.stderr)
    return seeds, options, verdicts, cuts
P._draw_candidates = patched
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
