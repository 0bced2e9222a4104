"""Give every corpus dialogue written before topics (round fourteen) the topic its lines speak to.

metagen's dialogue task names a topic drawn from the first two speakers' goals ("about Emmerich's
wish to get the crate to the university at Quennel before autumn"); the corpus's lines were written
to a task with none. Of the speakers' goals, worded as dialogue.world_topic words them, the one whose
content words (first five letters, stop words out) the lines share most becomes the topic when they
share at least MIN_SHARED; else the topic is "" (a prompt with none, as `--topic ""` asks).

    python experiments/eval-results/round23/dialogue_topics.py corpus/targets/*.yaml
"""
import re
import sys
from collections import Counter
from pathlib import Path

import yaml

sys.path.insert(0, "corpus")
from build import _dump  # noqa: E402

from metagen.dialogue import goal_wishes  # noqa: E402
from metagen.pipeline import make_request  # noqa: E402
from metagen.request import resolve_request  # noqa: E402
from metagen.world import load_world  # noqa: E402

MIN_SHARED = 2
STOP = set("""a an the and or but of in on at to by with from for into over under this that these those her his
their its my our your be is are was were it he she they i you we him them me us as so not no do does did have
has had one all any some who what when where which how than then there here out up down off before after again
just very can will would should could get make keep find""".split())


def stems(text: str) -> set[str]:
    return {w[:5] for w in re.findall(r"[a-z']+", text.lower()) if w not in STOP and len(w) > 2}


shared_counts = Counter()
for path in map(Path, sys.argv[1:]):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    world = load_world(path.parent / data["world"])
    for i, dialogue in enumerate(data.get("dialogues") or []):
        if "topic" in dialogue:
            continue
        request = make_request("dialogue", world, characters=dialogue["characters"],
                               location=dialogue.get("location"), turns=dialogue["turns"])
        said = stems(" ".join(line.get("text") or "" for line in dialogue["lines"]))
        wishes = [(len(stems(goal) & said), wish)
                  for goal, wish in goal_wishes(world, resolve_request(world, request).characters[:2])]
        shared, topic = max(wishes, default=(0, ""))
        shared_counts[shared] += 1
        topic = topic if shared >= MIN_SHARED else ""
        data["dialogues"][i] = {k: v for k, v in dialogue.items() if k != "lines"} | {"topic": topic,
                                                                                     "lines": dialogue["lines"]}
    path.write_text(_dump(data), encoding="utf-8")
print("content words shared with the best goal, dialogues:", dict(sorted(shared_counts.items())))
