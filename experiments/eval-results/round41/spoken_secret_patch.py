"""Run the metagen CLI with a story's secret turn opened as the character saying it ('Amos spoke at
last. "') instead of metagen.plan's narrated 'Amos admitted that' (round thirty-three's start words).

python spoken_secret_patch.py eval WORLD... --kinds story ...
"""
import sys

from metagen import plan
from metagen.cli import main

narrated = plan._with_turn_verb


def spoken(name: str, instruction: str, past: bool) -> str:
    if name and f". {name} admits that " in instruction:
        return f'{name} {"spoke" if past else "speaks"} at last. "'
    return narrated(name, instruction, past)


plan._with_turn_verb = spoken
sys.argv[0] = "metagen"
main()
