"""metagen with the ending beat's given candidates opening on a closing phrase (ENDING_START=before|inend)."""
import os, sys
from metagen import plan as P
from metagen.opening import lower_article
orig = P.beat_starts
MODE = os.environ.get("ENDING_START", "before")
def patched(world, resolved, plan, seed, candidates):
    starts = orig(world, resolved, plan, seed, candidates)
    past = world.style.tense_for("story") == "past"
    place = resolved.location
    beat, row = plan[-1], starts[-1]
    if beat.id != "ending":
        return starts
    for i, words in enumerate(row):
        if not words:
            continue
        if MODE == "before" and place is not None:
            row[i] = f"Before {words} {'left' if past else 'leaves'} {lower_article(place.name)},"
        else:
            row[i] = f"In the end, {words}"
    return starts
P.beat_starts = patched
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
