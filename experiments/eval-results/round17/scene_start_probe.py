"""Quality probe: scene openings other than "<Place> was/is" (which draws "a place where",
"a massive undertaking"): a sound verb, a smell verb, a locative. Prints scenes, seeds 1-3."""
import sys
from metagen import pipeline, prompts
from metagen.generator import load_model
from metagen.world import load_world

gen = load_model()
original = prompts.scene_start_words
FRAMES = {
    "be": None,
    "sound": {"past": ("rang with", "rang with"), "present": ("rings with", "ring with")},
    "smell": {"past": ("smelled of", "smelled of"), "present": ("smells of", "smell of")},
}
def frame_words(frame):
    def start(loc, tense=""):
        if FRAMES[frame] is None or not tense:
            return original(loc, tense)
        name = loc.name[:1].upper() + loc.name[1:]
        plural = prompts.be_form(loc.name, "present") == "are"
        return f"{name} {FRAMES[frame][tense][plural]}"
    return start
cases = [("worlds/ashenmere.yaml", "ember-keep"), ("worlds/harbour/world.yaml", "docks"), ("worlds/nexus-hub.yaml", "atrium")]
frames = sys.argv[1].split(",") if len(sys.argv) > 1 else list(FRAMES)
for path, loc in cases:
    world = load_world(path)
    req = pipeline.make_request("scene", world, location=loc)
    cfg = pipeline.effective_config(world, "scene", None, None)
    for frame in frames:
        prompts.scene_start_words = frame_words(frame)
        for seed in (1, 2, 3):
            piece = pipeline.compose(gen, world, [req], cfg, seeds=[seed]).pieces[0]
            print(f"[{world.id} {frame} {seed}] {piece.text}\n", flush=True)
