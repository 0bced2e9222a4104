"""Does the model's own reading of the world card after a story agree with blind readers (round 49)?

For each decided story pair of rounds nine on (round39/dpo_scenes.collect, as round42/story_agreement.py
reads them), both stories are scored by how much they make the cast's card likelier:
    channel = mean log p(card | story) - mean log p(card | nothing)
(the card: each requested character's "Name, role: description", as the story prompt gives it). A story
that makes Thorne a man or gives Ottoline's seeds to Dario should make her card less likely. Prints how
often the reader chose the story with the higher channel score, overall and on the held-aside worlds,
beside the same count for the mean token log-probability of the story alone (fluency).

python channel_agreement.py [--max-pairs N]      (from the repository root; METAGEN_HOME with the model)
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "round39"))
sys.path.insert(0, os.path.join(HERE, "..", "round42"))
from dpo_scenes import collect, worlds_in  # noqa: E402
from story_agreement import HELD, ids  # noqa: E402

from metagen.generator import load_model  # noqa: E402

LEAD = "\n\nThe people in this story:\n"


def card(world, cast):
    people = [c for c in world.characters if c.id in cast]
    return "\n".join(f"- {c.name}" + (f", {c.role}" if c.role else "") + (f": {c.description.strip()}" if c.description else "")
                     for c in people)


def logprobs(generator, ids: list[int]) -> torch.Tensor:
    """log p(ids[t] | ids[:t]) for t >= 1, float32."""
    model = generator.model
    tokens = torch.tensor([ids], dtype=torch.long)
    with torch.no_grad():
        logits = model(tokens, cache=model.new_cache(1, tokens.shape[1]))[0, :-1].float()
    return -F.cross_entropy(logits, tokens[0, 1:], reduction="none")


def scores(generator, story: str, card_text: str, prior: float) -> tuple[float, float]:
    """(channel, fluency): the card's mean log-prob after the story less `prior`; the story's own mean."""
    tok = generator.tokenizer
    head = tok.encode_plain(story + LEAD)
    tail = tok.encode_plain(card_text)
    lp = logprobs(generator, head + tail)
    return float(lp[len(head) - 1:].mean()) - prior, float(lp[: len(head) - 1].mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-pairs", type=int, default=10**6)
    args = parser.parse_args()
    generator = load_model(None)
    pairs = collect("story", subject="cast")[: args.max_pairs]
    tally = {"channel": [0, 0, 0, 0], "fluency": [0, 0, 0, 0]}  # agree, decided, held agree, held decided
    for n, pair in enumerate(pairs, 1):
        found = worlds_in(pair["folder"]).get(pair["world"])
        if found is None:
            continue
        world = found[0]
        cast, _ = ids(world, pair["header"])
        if not cast:
            continue
        card_text = card(world, cast)
        prior_ids = generator.tokenizer.encode_plain(LEAD.lstrip("\n") + card_text)
        base = generator.tokenizer.encode_plain(LEAD.lstrip("\n"))
        prior = float(logprobs(generator, prior_ids)[len(base) - 1:].mean())
        chosen = scores(generator, pair["chosen"], card_text, prior)
        rejected = scores(generator, pair["rejected"], card_text, prior)
        held = pair["world"] in HELD
        for i, key in enumerate(("channel", "fluency")):
            if chosen[i] != rejected[i]:
                t = tally[key]
                t[1] += 1
                t[0] += chosen[i] > rejected[i]
                t[3] += held
                t[2] += held and chosen[i] > rejected[i]
        if n % 50 == 0:
            print(n, {k: f"{v[0]}/{v[1]}" for k, v in tally.items()}, flush=True)
    for key, (agree, decided, held_agree, held_decided) in tally.items():
        print(f"{key}: reader chose the higher in {agree} of {decided} ({agree / max(decided, 1):.1%}); "
              f"held-aside worlds {held_agree} of {held_decided} ({held_agree / max(held_decided, 1):.1%})")


if __name__ == "__main__":
    main()
