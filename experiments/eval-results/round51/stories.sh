#!/bin/bash
# stories.sh TREE LABEL COMBOS...: metagen story WORLD --seed S -c CAST for each line, from TREE's code
export METAGEN_HOME=/tmp/r47/home
tree=$1 label=$2; shift 2
cd $tree
mkdir -p /tmp/r51/out/$label
cat "$@" | while read w s c; do
  PYTHONPATH=$tree /work/main/.venv/bin/python -m metagen --no-server story $w --seed $s -c $c -o /tmp/r51/out/$label -q --json >> /tmp/r51/out/$label.jsonl < /dev/null
done
