"""Run metagen's CLI with _choose_line wrapped: print per-line candidate texts to a log (MG_LINE_LOG)."""
import json, os, sys, metagen.dialogue as d
orig = d._choose_line
log = open(os.environ["MG_LINE_LOG"], "a")
def wrapped(world, request, options, names, lines, speaker, cfg, moderation=None):
    i, v = orig(world, request, options, names, lines, speaker, cfg, moderation)
    log.write(json.dumps({"world": world.name, "speaker": speaker.name, "turn": len(lines) + 1, "chosen": i,
                          "raw": [o.text for o in options], "first": [o.tokens[:1] for o in options],
                          "scores": [x.score for x in v]}) + "\n"); log.flush()
    return i, v
d._choose_line = wrapped
from metagen.cli import main
sys.argv = ["metagen", *sys.argv[1:]]
main()
