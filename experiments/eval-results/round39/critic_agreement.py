"""How often the critic's score (without its log-probability term) ranks a blind reader's choice
first, over every decided scene pair of earlier rounds (dpo_scenes.collect), and per finding: in
how many pairs it differs between the two texts, and how often the side it favours is the reader's.

python critic_agreement.py
"""
import collections
import sys
import os

sys.path.insert(0, os.path.dirname(__file__))
import dpo_scenes as d  # noqa: E402

from metagen.config import GenerationConfig  # noqa: E402
from metagen.critic import NARRATION_WEIGHTS, critic_context, judge  # noqa: E402
from metagen.editor import strike  # noqa: E402
from metagen.pipeline import SCENE_TARGET_WORDS  # noqa: E402
from metagen.prompts import build_prompt  # noqa: E402
from metagen.request import SceneRequest, resolve_request  # noqa: E402


def scene_context(world, place, cfg=GenerationConfig()):
    """Today's scene prompt for a place of `world` (by name or id) and the critic's context for it; None if no such place."""
    loc = next((l for l in world.locations if l.name == place or l.id == place), None)
    if loc is None:
        return None
    prompt = build_prompt(world, SceneRequest(location=loc.id), count_tokens=lambda t: len(t) // 4,
                          context_length=8192, max_new_tokens=200)
    text = "\n".join(m["content"] for m in prompt.messages)
    return prompt, critic_context(world, resolve_request(world, prompt.request), text, cfg,
                                  target_words=SCENE_TARGET_WORDS, narrator_person=world.style.point_of_view or "second",
                                  tense=world.style.tense_for("scene"))


def main():
    agree = total = 0
    by_finding = collections.defaultdict(lambda: [0, 0])  # finding -> [pairs it separates, agreeing with the reader]
    held_agree = held_total = 0
    for pair in d.collect("scene"):
        world, stem = d.worlds_in(pair["folder"])[pair["world"]]
        made = scene_context(world, pair["place"])
        if made is None:
            continue
        context = made[1]
        verdicts = []
        for side in (pair["chosen"], pair["rejected"]):
            edit = strike(side, context)
            verdicts.append(judge(edit.text, context, struck=len(edit.struck), weights=NARRATION_WEIGHTS))
        chosen, rejected = verdicts
        if chosen.score != rejected.score:
            total += 1
            agree += chosen.score > rejected.score
            if stem in d.HELD:
                held_total += 1
                held_agree += chosen.score > rejected.score
        for name, weight in NARRATION_WEIGHTS.items():
            a, b = chosen.findings.get(name, 0) * weight, rejected.findings.get(name, 0) * weight
            if a != b:
                by_finding[name][0] += 1
                by_finding[name][1] += a > b
    print(f"critic (no log-probability) ranks the reader's choice first in {agree} of {total} scene pairs it separates "
          f"({agree / max(1, total):.0%}); held-aside worlds {held_agree} of {held_total}")
    for name, (separated, agreed) in sorted(by_finding.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:12s} separates {separated:4d}, with the reader {agreed:4d} ({agreed / separated:.0%})")


if __name__ == "__main__":
    main()
