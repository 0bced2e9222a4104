"""The eval's story findings (metagen.measure.score) over `stories.sh` outputs: per set, stories with a
wrong pronoun, invented names, made-up relatives, wrong kin, copied prose, and the median words.

python story_counts.py SET.jsonl [SET.jsonl ...]    (from the repository root)
"""
import json
import statistics
import sys

import yaml

from metagen.measure import Output, score, world_reference
from metagen.world.load import load_world

WORLDS = {"nexus-hub": "worlds/nexus-hub.yaml", "ashenmere": "worlds/ashenmere.yaml",
          "saltgate": "worlds/harbour/world.yaml"}


def world_path(world_id):
    return WORLDS.get(world_id, f"corpus/worlds/{world_id}.yaml")


for path in sys.argv[1:]:
    counts = {"pronouns": 0, "invented": 0, "relatives": 0, "kin": 0, "copied": 0}
    words, n = [], 0
    for line in open(path):
        data = json.loads(line)
        front, body = open(data["path"], encoding="utf-8").read().split("\n---\n", 1)
        request = yaml.safe_load(front.lstrip("-\n"))["request"]
        world = load_world(world_path(data["world"]))
        out = score(world, Output(world.id, "story", "metagen", request, data["seed"], body.strip(), 0, "eos"),
                    world_reference(world))
        n += 1
        counts["pronouns"] += bool(out.pronouns)
        counts["invented"] += bool(out.unknown[0])
        counts["relatives"] += bool(out.relatives)
        counts["kin"] += bool(out.kin)
        counts["copied"] += out.copied[0]
        words.append(out.words)
    print(path, n, "stories;", ", ".join(f"{k} {v}" for k, v in counts.items()), "; median words",
          statistics.median(words))
