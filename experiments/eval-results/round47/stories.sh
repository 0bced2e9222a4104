#!/bin/bash
# stories.sh LABEL ADAPTER COMBOS...: metagen story WORLD --seed S (drawn cast and place) for each
# line of the COMBOS files (round 43's), with --adapter ADAPTER, from /work/main's code
export METAGEN_HOME=/tmp/r47/home
cd /work/main
mkdir -p /tmp/r47/out/$1
label=$1 adapter=$2; shift 2
cat "$@" | while read w s; do
  .venv/bin/python -m metagen --no-server story $w --seed $s --adapter $adapter -o /tmp/r47/out/$label -q --json >> /tmp/r47/out/$label.jsonl < /dev/null
done
