"""Append a second six-line dialogue skeleton (texts empty) to each training world's targets file.

usage: PYTHONPATH=. python experiments/eval-results/round31/add_dialogue.py corpus/targets/*.yaml

The pair is the world's first character with its fourth (its third where it has three), at its
second place, so the new dialogue's speakers and place differ from the first one's (characters 2
and 3 at place 3); the topic is the one `metagen dialogue --seed 2` draws. Held-aside worlds are
left alone; a file that already has two dialogues is left alone.
"""
import hashlib
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "corpus"))
from build import EVAL_EVERY  # noqa: E402

from metagen.dialogue import speaker_order, world_topic  # noqa: E402
from metagen.pipeline import make_request  # noqa: E402
from metagen.world import load_world  # noqa: E402

SEED = 2
for name in sys.argv[1:]:
    path = Path(name)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    world = load_world(path.parent / data["world"])
    if int(hashlib.sha256(world.id.encode()).hexdigest(), 16) % EVAL_EVERY == 0:
        continue
    if len(data.get("dialogues") or []) != 1:
        continue
    c = [ch.id for ch in world.characters]
    loc = [place.id for place in world.locations]
    unit = dict(characters=[c[0], c[3] if len(c) > 3 else c[2]], location=loc[1], turns=6)
    request = make_request("dialogue", world, **unit)
    lines = [{"speaker": s.name, "text": ""} for s in speaker_order(world, request)]
    unit.update(topic=world_topic(world, request, SEED) or "", lines=lines)
    # Appended as text so the file's first dialogue keeps its layout; `dialogues:` is followed by `chats:`.
    block = yaml.safe_dump([unit], sort_keys=False, allow_unicode=True, width=100)
    head, sep, tail = text.partition("\nchats:")
    if not sep:
        raise SystemExit(f"{path}: no chats section after the dialogues")
    path.write_text(head.rstrip("\n") + "\n" + block + "chats:" + tail, encoding="utf-8")
    print(path)
