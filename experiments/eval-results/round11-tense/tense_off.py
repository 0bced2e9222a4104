"""metagen eval with the critic's tense finding weighed 0 (recorded, never deciding): the same choices as
before the finding existed. With 'two' first: each world's second story request only (two characters)."""
import sys
import metagen.critic as C
import os; C.WEIGHTS["tense"] = float(os.environ.get("TENSE_WEIGHT", "0"))
args = sys.argv[1:]
if args and args[0] == "two":
    import metagen.eval as E
    original = E.build_grid
    E.build_grid = lambda world, kinds, max_requests, turns, story_cast=0: original(world, kinds, 2, turns)[1:]
    args = args[1:]
from metagen.cli import app
sys.argv = ["metagen", *args]
app()
