"""metagen with the ending's given starts "In the end, X" and (TURN_QUOTE=1) one of a turn's given
starts opening a quotation instead of "admitted that": 'Ysolde admitted, "' / 'Maëlle said, "I want to'."""
import os, sys
from metagen import plan as P
orig = P.beat_starts
def patched(world, resolved, plan, seed, candidates):
    starts = orig(world, resolved, plan, seed, candidates)
    past = world.style.tense_for("story") == "past"
    for beat, row in zip(plan, starts):
        given = [i for i, w in enumerate(row) if w]
        if beat.id == "ending" and os.environ.get("ENDING_INEND"):
            for i in given:
                row[i] = f"In the end, {row[i]}"
        elif beat.id != "opening" and os.environ.get("TURN_QUOTE") and given:
            i = given[-1]
            w = row[i]
            for verb in ("admitted that", "admits that"):
                if w.endswith(" " + verb):
                    row[i] = w[: -len(verb)] + verb.split()[0] + ', "'
            for verb in ("wanted to", "wants to"):
                if w.endswith(" " + verb):
                    row[i] = w[: -len(verb)] + ("said" if past else "says") + ', "I want to'
    return starts
P.beat_starts = patched
from metagen.cli import app
app(sys.argv[1:], standalone_mode=False)
