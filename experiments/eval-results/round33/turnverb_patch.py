"""metagen with turn beats' given starts carrying the turn's verb: "Ysolde admitted that", "Maëlle wanted to"."""
import re, sys
import metagen
from metagen import plan as P
orig = P.beat_starts
VERBS = {"admits that": ("admitted that", "admits that"), "wants to": ("wanted to", "wants to")}
def patched(world, resolved, plan, seed, candidates):
    starts = orig(world, resolved, plan, seed, candidates)
    past = world.style.tense_for("story") == "past"
    for beat, row in zip(plan, starts):
        if beat.id == "opening":
            continue
        for i, words in enumerate(row):
            if not words:
                continue
            for verb, (was, is_) in VERBS.items():
                if re.search(rf"\. {re.escape(words)} {verb}\b", beat.instruction):
                    row[i] = f"{words} {was if past else is_}"
    return starts
P.beat_starts = patched
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
