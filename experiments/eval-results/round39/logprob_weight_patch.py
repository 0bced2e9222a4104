"""Run the metagen CLI with the critic's log-probability weight for narration (story beats and
scenes) set to $LOGPROB_WEIGHT instead of metagen.critic.NARRATION_WEIGHTS' 2.25.

LOGPROB_WEIGHT=10 python logprob_weight_patch.py eval WORLD... --kinds scene ...
"""
import os
import sys

from metagen import critic
from metagen.cli import main

critic.NARRATION_WEIGHTS["logprob"] = float(os.environ["LOGPROB_WEIGHT"])  # the dict every importer holds
sys.argv[0] = "metagen"
main()
