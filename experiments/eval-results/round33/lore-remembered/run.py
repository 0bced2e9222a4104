"""metagen (with the turn verbs) whose lore turns' given starts say the one it matters to remembering it."""
import sys
import metagen
from metagen import plan as P
from metagen.prompts import asked_tense
orig = P.beat_starts
def patched(world, resolved, plan, seed, candidates):
    starts = orig(world, resolved, plan, seed, candidates)
    past = asked_tense(world, "story") == "past"
    for beat, row in zip(plan, starts):
        for i, words in enumerate(row):
            if words and "Let this part of the world's history matter" in beat.instruction:
                row[i] = f"{words} {'remembered' if past else 'remembers'}"
    return starts
P.beat_starts = patched
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
