"""Run `metagen eval` (dialogue) with every line's candidates logged to a JSONL file.

Each line: the world, the dialogue's prompt (system and user messages as the model read them), the
transcript so far, the speaker, every candidate's spoken line as the critic judged it, its findings
and score, and the critic's pick.

usage: PYTHONPATH=. python collect_lines.py LINES.jsonl EVAL-ARGS...
"""
import json
import sys

import metagen.dialogue as dialogue
from metagen.critic import best_index

out = open(sys.argv[1], "a", encoding="utf-8")
_choose_line, _write_line = dialogue._choose_line, dialogue._DialogueWriter.write_line
CURRENT = {"messages": []}


def write_line(self, i, speaker):
    CURRENT["messages"] = list(self.messages)
    return _write_line(self, i, speaker)


def choose_line(world, request, options, names, lines, speaker, cfg, moderation=None):
    chosen, verdicts = _choose_line(world, request, options, names, lines, speaker, cfg, moderation)
    if verdicts:
        said = [dialogue.spoken_line(o.text, names) for o in options]
        out.write(json.dumps({"kind": "dialogue", "world": world.id, "messages": CURRENT["messages"],
                              "transcript": [list(line) for line in lines], "speaker": speaker.name,
                              "candidates": [{"text": t, "score": v.score, "findings": v.findings}
                                             for t, v in zip(said, verdicts)],
                              "chosen": best_index(verdicts)}, ensure_ascii=False) + "\n")
        out.flush()
    return chosen, verdicts


dialogue._choose_line, dialogue._DialogueWriter.write_line = choose_line, write_line
from metagen.cli import app  # noqa: E402

app(sys.argv[2:])
