#!/bin/bash
# stories_w.sh TREE LABEL COMBOS...: metagen story WORLD --seed S (cast drawn by seed), from TREE's code
export METAGEN_HOME=/tmp/r47/home
tree=$1 label=$2; shift 2
cd $tree
mkdir -p /tmp/r51/out/$label
cat "$@" | while read w s; do
  PYTHONPATH=$tree /work/main/.venv/bin/python -m metagen --no-server story $w --seed $s -o /tmp/r51/out/$label -q --json >> /tmp/r51/out/$label.jsonl < /dev/null
done
