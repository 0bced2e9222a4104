#!/bin/bash
# stories.sh LABEL TREE COMBOS: metagen story WORLD --seed S (drawn cast and place) for each line of COMBOS, from TREE's code
export METAGEN_HOME=/tmp/r43/home PYTHONPATH=$2
cd $2
mkdir -p /tmp/r44/out/$1
while read w s; do
  /work/main/.venv/bin/python -m metagen --no-server story $w --seed $s -o /tmp/r44/out/$1 -q --json >> /tmp/r44/out/$1.jsonl < /dev/null
done < $3
