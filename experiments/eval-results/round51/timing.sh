#!/bin/bash
# The same changed request, pronoun_guard off and redraw, alternating, 3 each: story seconds from --json.
export METAGEN_HOME=/tmp/r47/home
cd /work/main
rm -rf /tmp/r51/timing; mkdir -p /tmp/r51/timing
for i in 1 2 3; do
  for g in off redraw; do
    .venv/bin/python -m metagen --no-server story worlds/harbour/world.yaml --seed 68 -c mira,soren --pronoun-guard $g -o /tmp/r51/timing/$g-$i -q --json < /dev/null | python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print('$g', $i, d['seconds'], d['tokens'])"
  done
done
