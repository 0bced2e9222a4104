#!/bin/bash
# run.sh GRIDNAME WORLDS...: scenes at the default temperature (0.6) against 0.45, blind, from /work/main
name=$1; shift
cd /work/main
export METAGEN_HOME=/tmp/mghome35
.venv/bin/python -m metagen --no-server eval "$@" --seeds 3 --max-requests 2 --kinds scene --no-baseline \
  --blind /tmp/r42/t45/blind-$name --a temperature=0.6 --b temperature=0.45 -q
