"""Build metagen's training corpus: skeletons of units to write, checks, and the JSONL files.

    python corpus/build.py skeleton WORLD.yaml... --out DIR   # a targets file per world, texts empty
    python corpus/build.py check TARGETS.yaml...              # every written text held to the checks
    python corpus/build.py assemble TARGETS.yaml... --out corpus/   # train.jsonl, eval.jsonl, stats

The units of a world (three characters and three places at least): two planned stories (four beats and
three beats), three scenes, one six-line dialogue between two characters, and one three-turn NPC chat
with the character the dialogue leaves out (`metagen chat --as`: the player's lines and the answers,
both written; `player:` is the player's name, and a `location:` id may be added). A targets file that
already exists gets only the sections it lacks, added at its end; nothing written is touched. A chat's
answers are checked and assembled as far as its turns are written, in order. Prompts are built by
metagen itself (metagen.corpus), with the default model's tokenizer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from metagen.chat import DEFAULT_PLAYER
from metagen.corpus import (ChatRequest, chat_examples, check_example, dialogue_examples, scene_example,
                            story_examples, write_jsonl)
from metagen.dialogue import speaker_order, world_topic
from metagen.errors import MetagenError
from metagen.pipeline import make_request
from metagen.plan import make_plan
from metagen.request import resolve_request
from metagen.world import load_world

SCENE_TIMES = ("at dawn", "late at night", "on a cold evening", "at midday", "in the rain at dusk")
EVAL_EVERY = 10  # one world in ten (by its id's hash) is kept aside for evaluation
CHAT_TURNS = 3
DIALOGUE_SEED = 1  # draws a new skeleton's dialogue topic


def _generator():
    from metagen.generator import load_model

    return load_model()


def _units(world) -> dict:
    """The requests a world's skeleton asks for, chosen from its first characters and places."""
    c = [ch.id for ch in world.characters]
    loc = [place.id for place in world.locations]
    if len(c) < 3 or len(loc) < 3:
        raise SystemExit(f"{world.path}: a corpus world needs 3 characters and 3 locations")
    time = SCENE_TIMES[int(hashlib.sha256(world.id.encode()).hexdigest(), 16) % len(SCENE_TIMES)]
    return {
        "stories": [dict(characters=[c[0], c[1]], location=loc[0], seed=1, length="medium"),
                    dict(characters=[c[2], c[0]], location=loc[1], seed=2, length="short")],
        "scenes": [dict(location=loc[0]), dict(location=loc[1], characters=[c[1]]), dict(location=loc[2], time=time)],
        "dialogues": [dict(characters=[c[1], c[2]], location=loc[2], turns=6)],
        "chats": [dict(character=c[0], player=DEFAULT_PLAYER)],  # c[0] is not in the dialogue
    }


def skeleton(world_path: Path, out: Path) -> str:
    """Write the world's targets file, or add the sections an existing one lacks; says which."""
    world = load_world(world_path)
    units = _units(world)
    out.mkdir(parents=True, exist_ok=True)
    relative = os.path.relpath(world_path.resolve(), out.resolve())  # the folders move together
    data = {"world": relative, "stories": [], "scenes": [], "dialogues": [], "chats": []}
    for story in units["stories"]:
        request = make_request("story", world, **{k: v for k, v in story.items() if k != "seed"})
        plan = make_plan(world, resolve_request(world, request), story["seed"])
        data["stories"].append({**story, "beats": [{"beat": b.id, "instruction": b.instruction, "text": ""}
                                                   for b in plan]})
    for scene in units["scenes"]:
        data["scenes"].append({**scene, "text": ""})
    for dialogue in units["dialogues"]:
        request = make_request("dialogue", world, **dialogue)
        lines = [{"speaker": s.name, "text": ""} for s in speaker_order(world, request)]
        # The topic `metagen dialogue --seed 1` would draw, so the lines are written to what the
        # prompt asks ("" where the world gives none: a prompt with no topic).
        topic = world_topic(world, request, DIALOGUE_SEED) or ""
        data["dialogues"].append({**dialogue, "topic": topic, "lines": lines})
    for chat in units["chats"]:
        data["chats"].append({**chat, "turns": [{"line": "", "answer": ""} for _ in range(CHAT_TURNS)]})
    path = out / f"{world.id}.yaml"
    if not path.exists():
        path.write_text(_dump(data), encoding="utf-8")
        return f"{path}: written"
    text = path.read_text(encoding="utf-8")
    missing = {key: value for key, value in data.items() if key not in (yaml.safe_load(text) or {})}
    if not missing:
        return f"{path}: has every section; left as it is"
    path.write_text(text + ("" if text.endswith("\n") else "\n") + _dump(missing), encoding="utf-8")
    return f"{path}: added {', '.join(missing)}"


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def examples_of(generator, targets_path: Path, *, strict: bool = True):
    """(request, example) for every unit of a targets file whose texts are all written."""
    data = yaml.safe_load(targets_path.read_text(encoding="utf-8"))
    world = load_world(targets_path.parent / data["world"])  # relative to the targets file
    found = []
    for i, story in enumerate(data.get("stories") or []):
        texts = [b.get("text") or "" for b in story["beats"]]
        if not all(t.strip() for t in texts):
            continue
        request = make_request("story", world, characters=story["characters"], location=story["location"],
                               length=story["length"])
        plan = make_plan(world, resolve_request(world, request), story["seed"])
        if [b.instruction for b in plan] != [b["instruction"] for b in story["beats"]]:
            raise SystemExit(f"{targets_path}: story {i + 1}: the plan changed; make the skeleton again")
        for example in story_examples(generator, world, request, story["seed"], texts):
            found.append((request, _named(example, f"story-{i + 1}/{example.unit}")))
    for i, scene in enumerate(data.get("scenes") or []):
        if (scene.get("text") or "").strip():
            fields = {k: v for k, v in scene.items() if k != "text"}
            request = make_request("scene", world, **fields)
            found.append((request, _named(scene_example(generator, world, request, scene["text"]), f"scene-{i + 1}")))
    for i, dialogue in enumerate(data.get("dialogues") or []):
        texts = [line.get("text") or "" for line in dialogue["lines"]]
        if not all(t.strip() for t in texts):
            continue
        request = make_request("dialogue", world, characters=dialogue["characters"],
                               location=dialogue.get("location"), turns=dialogue["turns"],
                               topic=dialogue.get("topic", ""))
        for example in dialogue_examples(generator, world, request, texts):
            found.append((request, _named(example, f"dialogue-{i + 1}/{example.unit}")))
    for i, chat in enumerate(data.get("chats") or []):
        turns = [((t.get("line") or "").strip(), (t.get("answer") or "").strip()) for t in chat["turns"]]
        written = next((k for k, (line, answer) in enumerate(turns) if not (line and answer)), len(turns))
        request = ChatRequest(chat["character"], chat.get("player") or DEFAULT_PLAYER, chat.get("location"))
        for example in chat_examples(generator, world, request, turns[:written]):
            found.append((request, _named(example, f"chat-{i + 1}/{example.unit}")))
    return world, found


def _named(example, unit):
    return replace(example, unit=unit)


def check(generator, paths: list[Path]) -> int:
    bad = total = 0
    for path in paths:
        world, found = examples_of(generator, path)
        for request, example in found:
            total += 1
            for problem in check_example(generator, world, request, example):
                bad += 1
                print(f"{path}: {example.unit}: {problem}")
    print(f"{total} examples written, {bad} problems", file=sys.stderr)
    return 1 if bad else 0


def assemble(generator, paths: list[Path], out: Path) -> int:
    train, held, rejected = [], [], 0
    worlds = set()
    for path in paths:
        world, found = examples_of(generator, path)
        worlds.add(world.id)
        aside = int(hashlib.sha256(world.id.encode()).hexdigest(), 16) % EVAL_EVERY == 0
        for request, example in found:
            if check_example(generator, world, request, example):
                rejected += 1
                continue
            (held if aside else train).append(example)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(train, out / "train.jsonl")
    write_jsonl(held, out / "eval.jsonl")
    kinds = {}
    for example in train + held:
        kinds[example.kind] = kinds.get(example.kind, 0) + 1
    stats = {"worlds": len(worlds), "train": len(train), "eval": len(held), "rejected": rejected, "kinds": kinds,
             "eval_worlds": sorted({e.world for e in held})}
    (out / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(json.dumps(stats))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("skeleton")
    s.add_argument("worlds", nargs="+", type=Path)
    s.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("check")
    c.add_argument("targets", nargs="+", type=Path)
    a = sub.add_parser("assemble")
    a.add_argument("targets", nargs="+", type=Path)
    a.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "skeleton":
            for world in args.worlds:
                print(skeleton(world, args.out))
            return 0
        generator = _generator()
        if args.command == "check":
            return check(generator, args.targets)
        return assemble(generator, args.targets, args.out)
    except MetagenError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
