"""Run the metagen CLI with the critic's log-probability weight for spoken lines (dialogue lines and
chat answers: metagen.critic.WEIGHTS, 0.5) set to $LINE_LOGPROB_WEIGHT.

LINE_LOGPROB_WEIGHT=5 python line_logprob_patch.py eval WORLD... --kinds dialogue ...
"""
import os
import sys

from metagen import critic
from metagen.cli import main

critic.WEIGHTS["logprob"] = float(os.environ["LINE_LOGPROB_WEIGHT"])  # judge's default weights are this dict
sys.argv[0] = "metagen"
main()
