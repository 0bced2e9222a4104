"""Run `metagen eval` with a place that gives one sense verb opening half its scene candidates on
other words: its verb of being ("The Fountain Atrium is"), "In the Fountain Atrium," or a second
verb of sound ("The Fountain Atrium echoes with", what round nineteen adopted as SECOND_SOUND_VERBS).
Run on round nineteen's code before that adoption (the place had one start then):

    python one_sense_be.py be|in|echo <metagen eval arguments>
"""
import sys

import metagen.prompts as prompts
from metagen.cli import app

variant, original = sys.argv[1], prompts.scene_starts


def second_start(loc, tense, first):
    if variant == "be":
        return prompts.scene_start_words(loc, tense)
    if variant == "in":
        return f"In {prompts.lower_article(loc.name)},"
    return first.replace(" rings with", " echoes with").replace(" ring with", " echo with").replace(" rang with", " echoed with")


def scene_starts(loc, tense):
    starts = original(loc, tense)
    if len(starts) == 1 and starts != [prompts.scene_start_words(loc, tense)]:
        return starts + [second_start(loc, tense, starts[0])]
    return starts


prompts.scene_starts = scene_starts
app(["eval", *sys.argv[2:]], standalone_mode=False)
