#!/bin/bash
# run.sh GRIDNAME WORLDS...: scenes from eight candidates against twelve, blind, from /work/main
name=$1; shift
cd /work/main
export METAGEN_HOME=/tmp/mghome35
.venv/bin/python -m metagen --no-server eval "$@" --seeds 3 --max-requests 2 --kinds scene --no-baseline \
  --blind /tmp/r42/c12/blind-$name --a candidates=8 --b candidates=12 -q
